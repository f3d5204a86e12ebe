"""coupons as member rewards: member_coupons (a buyer's issued codes, sealed), coupon_codes.void_at

Revision ID: 0024_member_coupons
Revises: 0023_group_buy
"""
import sqlalchemy as sa
from alembic import op

revision = '0024_member_coupons'
down_revision = '0023_group_buy'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_coupons',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.String(length=400), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('ref', sa.String(length=120), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('points', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest'),
    sa.UniqueConstraint('ref')
    )
    op.create_index('ix_member_coupons_buyer', 'member_coupons', ['buyer_channel', 'buyer_id'], unique=False)
    op.create_index('ix_member_coupons_order', 'member_coupons', ['order_id'], unique=False)
    op.add_column('coupon_codes', sa.Column('void_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as 0016: a batch copy would drop tables others point at.
    op.drop_column('coupon_codes', 'void_at')
    op.drop_index('ix_member_coupons_order', table_name='member_coupons')
    op.drop_index('ix_member_coupons_buyer', table_name='member_coupons')
    op.drop_table('member_coupons')
