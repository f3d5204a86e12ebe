"""coupons: campaigns, their codes (HMAC fingerprints only) and one use per order (core/coupons.py)

Revision ID: 0020_coupons
Revises: 0019_promotions
"""
import sqlalchemy as sa
from alembic import op

revision = '0020_coupons'
down_revision = '0019_promotions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coupons',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('min_spend', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('skus', sa.JSON(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('total_limit', sa.Integer(), nullable=True),
    sa.Column('per_buyer', sa.Integer(), nullable=True),
    sa.Column('single_use', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('used', sa.Integer(), server_default='0', nullable=False),
    sa.Column('codes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('coupon_codes',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], ),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index('ix_coupon_codes_coupon', 'coupon_codes', ['coupon_id'], unique=False)
    op.create_table('coupon_uses',
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('buyer', sa.String(length=96), nullable=False),
    sa.Column('amount_off', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index('ix_coupon_uses_coupon_buyer', 'coupon_uses', ['coupon_id', 'buyer'], unique=False)
    op.create_index('ix_coupon_uses_digest', 'coupon_uses', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_coupon_uses_digest', table_name='coupon_uses')
    op.drop_index('ix_coupon_uses_coupon_buyer', table_name='coupon_uses')
    op.drop_table('coupon_uses')
    op.drop_index('ix_coupon_codes_coupon', table_name='coupon_codes')
    op.drop_table('coupon_codes')
    op.drop_table('coupons')
