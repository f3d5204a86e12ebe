"""promotions: what came off an order's listed price (amount and Stars) and what each promotion applied to it

Revision ID: 0019_promotions
Revises: 0018_broadcasts
"""
import sqlalchemy as sa
from alembic import op

revision = '0019_promotions'
down_revision = '0018_broadcasts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('discount', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('stars_discount', sa.Integer(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('promo', sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+): a batch copy of orders would fight the foreign keys pointing at it.
    op.drop_column('orders', 'promo')
    op.drop_column('orders', 'stars_discount')
    op.drop_column('orders', 'discount')
