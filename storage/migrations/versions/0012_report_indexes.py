"""report indexes: orders by the time they were paid, which every report (core/reports/) reads by, covering what
the reports group and sum (status, currency, amount, qty, product, buyer) so a month of orders is read from the
index alone

Revision ID: 0012_report_indexes
Revises: 0011_account_links
"""
from alembic import op

revision = '0012_report_indexes'
down_revision = '0011_account_links'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_orders_paid', 'orders', ['paid_at', 'status', 'currency', 'amount', 'qty', 'product_id',
                                                 'buyer_channel', 'buyer_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_paid', table_name='orders')
