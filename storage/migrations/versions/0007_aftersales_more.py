"""after-sales tickets: a buyer's report outside the automatic policy, until a merchant reissues, refunds or
rejects it (with the answer the buyer reads)

Revision ID: 0007_aftersales_more
Revises: 0009_wallet_commissions
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_aftersales_more'
down_revision = '0009_wallet_commissions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('problem', sa.String(length=24), nullable=False),
    sa.Column('why', sa.String(length=24), server_default='', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('answer', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=96), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_tickets_order', 'tickets', ['order_id'], unique=False)
    op.create_index('ix_tickets_buyer', 'tickets', ['buyer_channel', 'buyer_id', 'created_at'], unique=False)
    op.create_index('ix_tickets_status', 'tickets', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_status', table_name='tickets')
    op.drop_index('ix_tickets_buyer', table_name='tickets')
    op.drop_index('ix_tickets_order', table_name='tickets')
    op.drop_table('tickets')
