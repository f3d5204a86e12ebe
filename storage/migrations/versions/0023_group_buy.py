"""group-buy (拼团): groups and their members; bundles: a product's parts

Revision ID: 0023_group_buy
Revises: 0022_members
"""
import sqlalchemy as sa
from alembic import op

revision = '0023_group_buy'
down_revision = '0022_members'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('products', sa.Column('bundle', sa.JSON(), nullable=True))
    op.create_table('group_buys',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('opener_channel', sa.String(length=16), nullable=False),
    sa.Column('opener_id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('stars', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_group_buys_open', 'group_buys', ['status', 'deadline'], unique=False)
    op.create_table('group_buy_members',
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('group_id', sa.String(length=16), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['group_buys.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index('ix_group_buy_members_group', 'group_buy_members', ['group_id', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_group_buy_members_group', table_name='group_buy_members')
    op.drop_table('group_buy_members')
    op.drop_index('ix_group_buys_open', table_name='group_buys')
    op.drop_table('group_buys')
    op.drop_column('products', 'bundle')
