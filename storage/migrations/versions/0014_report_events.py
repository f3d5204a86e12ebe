"""report events: the funnel's counters (product views and invoices per day of the store's zone, product and channel),
added to by the group commit (core/reports/events.py)

Revision ID: 0014_report_events
Revises: 0013_console
"""
import sqlalchemy as sa
from alembic import op

revision = '0014_report_events'
down_revision = '0013_console'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_events',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'product_id', 'channel', 'kind')
    )


def downgrade() -> None:
    op.drop_table('report_events')
