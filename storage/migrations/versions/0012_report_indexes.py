"""report indexes: orders by the time they were paid, which every report (core/reports/) reads by

Revision ID: 0012_report_indexes
Revises: 0011_account_links
"""
from alembic import op

revision = '0012_report_indexes'
down_revision = '0011_account_links'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_orders_paid', 'orders', ['paid_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_paid', table_name='orders')
