"""flash sales: a product at a price of its own in a time window, with its unit cap and per-buyer limit
(core/flash_sales.py)

Revision ID: 0021_flash_sales
Revises: 0020_coupons
"""
import sqlalchemy as sa
from alembic import op

revision = '0021_flash_sales'
down_revision = '0020_coupons'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flash_sales',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('stars', sa.Integer(), nullable=True),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('per_buyer', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sold', sa.Integer(), server_default='0', nullable=False),
    sa.Column('source', sa.String(length=96), nullable=False),
    sa.Column('created_by', sa.String(length=96), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_flash_sales_product', 'flash_sales', ['product_id', 'ends_at'], unique=False)
    op.create_table('flash_sale_uses',
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('sale_id', sa.Integer(), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sale_id'], ['flash_sales.id'], ),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index('ix_flash_sale_uses_buyer', 'flash_sale_uses', ['sale_id', 'buyer_channel', 'buyer_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_flash_sale_uses_buyer', table_name='flash_sale_uses')
    op.drop_table('flash_sale_uses')
    op.drop_index('ix_flash_sales_product', table_name='flash_sales')
    op.drop_table('flash_sales')
