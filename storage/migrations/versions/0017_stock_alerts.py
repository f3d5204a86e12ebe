"""stock alerts: buyers waiting for a sold-out product to come back (core/stock_alerts.py)

Revision ID: 0017_stock_alerts
Revises: 0016_product_images
"""
import sqlalchemy as sa
from alembic import op

revision = '0017_stock_alerts'
down_revision = '0016_product_images'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stock_alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product_id', 'buyer_channel', 'buyer_id', name='uq_stock_alerts_buyer')
    )
    op.create_index('ix_stock_alerts_waiting', 'stock_alerts', ['product_id', 'notified_at', 'created_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_stock_alerts_waiting', table_name='stock_alerts')
    op.drop_table('stock_alerts')
