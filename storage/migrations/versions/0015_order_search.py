"""order search: a buyer's orders indexed by the buyer's id first, so the console's order search finds a bare id
on any channel through the index (channel:id and every older use of ix_orders_buyer still do: they give both)

Revision ID: 0015_order_search
Revises: 0014_report_events
"""
from alembic import op

revision = '0015_order_search'
down_revision = '0014_report_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_orders_buyer', table_name='orders')
    op.create_index('ix_orders_buyer', 'orders', ['buyer_id', 'buyer_channel', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_buyer', table_name='orders')
    op.create_index('ix_orders_buyer', 'orders', ['buyer_channel', 'buyer_id', 'created_at'], unique=False)
