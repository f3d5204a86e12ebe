"""members: points ledger, the spend counted for member levels, buyers' referral codes (core/members/)

Revision ID: 0022_members
Revises: 0021_flash_sales
"""
import sqlalchemy as sa
from alembic import op

revision = '0022_members'
down_revision = '0021_flash_sales'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('points_ledger',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('ref', sa.String(length=120), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    op.create_index('ix_points_ledger_buyer', 'points_ledger', ['buyer_channel', 'buyer_id', 'remaining'])
    op.create_index('ix_points_ledger_order', 'points_ledger', ['order_id'])
    op.create_table('member_spend',
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index('ix_member_spend_buyer', 'member_spend', ['buyer_channel', 'buyer_id'])
    op.create_table('referral_codes',
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest'),
    sa.UniqueConstraint('channel', 'external_id', name='uq_referral_codes_buyer')
    )


def downgrade() -> None:
    op.drop_table('referral_codes')
    op.drop_index('ix_member_spend_buyer', table_name='member_spend')
    op.drop_table('member_spend')
    op.drop_index('ix_points_ledger_order', table_name='points_ledger')
    op.drop_index('ix_points_ledger_buyer', table_name='points_ledger')
    op.drop_table('points_ledger')
