"""suppliers: orders.account (top-ups) and the supply_requests ledger

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account', sa.String(length=128), server_default='', nullable=False))

    op.create_table('supply_requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('supplier', sa.String(length=32), nullable=False),
    sa.Column('supplier_sku', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('cost', sa.BigInteger(), nullable=False),
    sa.Column('upstream_id', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('supply_requests', schema=None) as batch_op:
        batch_op.create_index('ix_supply_status', ['kind', 'status', 'updated_at'], unique=False)
        batch_op.create_index('ix_supply_supplier', ['supplier', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('supply_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_supply_supplier')
        batch_op.drop_index('ix_supply_status')
    op.drop_table('supply_requests')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('account')
