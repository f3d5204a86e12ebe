"""product images: pictures of products (re-encoded, named by their content hash) and each product's current one

Revision ID: 0016_product_images
Revises: 0015_order_search
"""
import sqlalchemy as sa
from alembic import op

revision = '0016_product_images'
down_revision = '0015_order_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product_images',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('content_type', sa.String(length=16), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.add_column('products', sa.Column('image', sa.String(length=40), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of products would drop the table that orders
    # and codes point at, which SQLite's foreign keys refuse once there are orders.
    op.drop_column('products', 'image')
    op.drop_table('product_images')
