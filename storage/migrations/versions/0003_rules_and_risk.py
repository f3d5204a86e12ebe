"""rules and risk: customers.phone/level/reseller, order indexes for the counts, order_risk, blacklist,
risk_challenges

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('level', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reseller', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_customers_phone', ['phone'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_buyer_product', ['buyer_channel', 'buyer_id', 'product_id', 'created_at'],
                              unique=False)
        batch_op.create_index('ix_orders_chat', ['chat_id', 'created_at'], unique=False)

    op.create_table('order_risk',
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=12), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('review', sa.String(length=12), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=96), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('order_id')
    )
    with op.batch_alter_table('order_risk', schema=None) as batch_op:
        batch_op.create_index('ix_order_risk_review', ['created_at'], unique=False,
                              sqlite_where=sa.text("review = 'pending'"),
                              postgresql_where=sa.text("review = 'pending'"))

    op.create_table('blacklist',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=96), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('actor', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'value')
    )

    op.create_table('risk_challenges',
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('buyer_channel', sa.String(length=16), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token')
    )
    with op.batch_alter_table('risk_challenges', schema=None) as batch_op:
        batch_op.create_index('ix_risk_challenges_buyer', ['buyer_channel', 'buyer_id', 'valid_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('risk_challenges', schema=None) as batch_op:
        batch_op.drop_index('ix_risk_challenges_buyer')
    op.drop_table('risk_challenges')
    op.drop_table('blacklist')
    with op.batch_alter_table('order_risk', schema=None) as batch_op:
        batch_op.drop_index('ix_order_risk_review')
    op.drop_table('order_risk')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_chat')
        batch_op.drop_index('ix_orders_buyer_product')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_phone')
        batch_op.drop_column('reseller')
        batch_op.drop_column('level')
        batch_op.drop_column('phone')
