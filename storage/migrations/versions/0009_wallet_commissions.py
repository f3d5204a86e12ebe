"""wallet top-ups paid by resellers (Stars, WeChat Pay), commissions (分销) and B2B orders waiting for stock
(partial policy `wait`)

Revision ID: 0009_wallet_commissions
Revises: 0008_reseller_groups
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_wallet_commissions'
down_revision = '0008_reseller_groups'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('wallet_topups',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('stars', sa.Integer(), nullable=True),
    sa.Column('provider', sa.String(length=24), nullable=False),
    sa.Column('payer', sa.String(length=96), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('commissions',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('ref', sa.String(length=96), nullable=False),
    sa.Column('actor', sa.String(length=96), server_default='', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    op.create_index('ix_commissions_reseller', 'commissions', ['reseller_id', 'id'], unique=False)
    op.create_table('b2b_waiting',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deliver', sa.String(length=24), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id')
    )
    op.create_index('ix_b2b_waiting_product', 'b2b_waiting', ['product_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_b2b_waiting_product', table_name='b2b_waiting')
    op.drop_table('b2b_waiting')
    op.drop_index('ix_commissions_reseller', table_name='commissions')
    op.drop_table('commissions')
    op.drop_table('wallet_topups')
