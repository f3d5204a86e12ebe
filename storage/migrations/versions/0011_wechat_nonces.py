"""wechat nonces: the (timestamp, nonce) pairs the WeChat callback took, shared by every store process

Revision ID: 0011_wechat_nonces
Revises: 0007_aftersales_more
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_wechat_nonces'
down_revision = '0007_aftersales_more'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_nonces',
    sa.Column('pair', sa.String(length=64), nullable=False),
    sa.Column('stale_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pair')
    )
    op.create_index('ix_wechat_nonces_stale', 'wechat_nonces', ['stale_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wechat_nonces_stale', table_name='wechat_nonces')
    op.drop_table('wechat_nonces')
