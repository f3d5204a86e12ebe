"""broadcasts: merchants' announcements, buyers' opt-outs, the WeChat 48-hour window, outbox priority

Revision ID: 0018_broadcasts
Revises: 0017_stock_alerts
"""
import sqlalchemy as sa
from alembic import op

revision = '0018_broadcasts'
down_revision = '0017_stock_alerts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('merchant', sa.String(length=96), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('segment', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('news_optouts',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'external_id')
    )
    op.add_column('customers', sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('outbox', sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
    op.add_column('outbox', sa.Column('broadcast_id', sa.Integer(), nullable=True))
    op.create_index('ix_outbox_broadcast', 'outbox', ['broadcast_id'], unique=False)


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as 0016: a batch copy would drop tables others point at.
    op.drop_index('ix_outbox_broadcast', table_name='outbox')
    op.drop_column('outbox', 'broadcast_id')
    op.drop_column('outbox', 'priority')
    op.drop_column('customers', 'last_message_at')
    op.drop_table('news_optouts')
    op.drop_table('broadcasts')
