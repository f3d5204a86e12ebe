"""reseller groups: owners of reseller accounts, group chats linked to resellers, allowed members, quotes
shown in groups and the orders they became (group-chat ordering)

Revision ID: 0008_reseller_groups
Revises: 0010_card_faces
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_reseller_groups'
down_revision = '0010_card_faces'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reseller_owners',
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=96), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('reseller_id'),
    sa.UniqueConstraint('owner')
    )
    op.create_table('reseller_groups',
    sa.Column('chat', sa.String(length=64), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('linked_by', sa.String(length=96), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('chat')
    )
    op.create_table('group_members',
    sa.Column('chat', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('allowed', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chat', 'user')
    )
    op.create_index('ix_group_members_username', 'group_members', ['chat', 'username'], unique=False)
    op.create_table('group_orders',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('chat', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('unit', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id')
    )
    op.create_index('ix_group_orders_user', 'group_orders', ['user', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_group_orders_user', table_name='group_orders')
    op.drop_table('group_orders')
    op.drop_index('ix_group_members_username', table_name='group_members')
    op.drop_table('group_members')
    op.drop_table('reseller_groups')
    op.drop_table('reseller_owners')
