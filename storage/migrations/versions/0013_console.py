"""console: the web console's one-time login links and sessions (only token hashes are kept)

Revision ID: 0013_console
Revises: 0012_report_indexes
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_console'
down_revision = '0012_report_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('merchant_channel', sa.String(length=16), nullable=False),
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_table('console_sessions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('merchant_channel', sa.String(length=16), nullable=False),
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent', sa.String(length=200), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_console_sessions_open', 'console_sessions', ['ended_at', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_console_sessions_open', table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_table('console_links')
