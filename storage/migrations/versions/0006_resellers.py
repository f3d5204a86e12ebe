"""resellers: accounts with a price tier and a wallet (balance = sum of wallet_ledger), API keys (secrets
vault-encrypted), Idempotency-Keys of B2B orders, nonces of signed API requests

Revision ID: 0006_resellers
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_resellers'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resellers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('discount_percent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('prices', sa.JSON(), nullable=False),
    sa.Column('credit_limit', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('balance', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('wallet_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('ref', sa.String(length=96), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=True),
    sa.Column('actor', sa.String(length=96), server_default='', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    op.create_index('ix_wallet_ledger_reseller', 'wallet_ledger', ['reseller_id', 'id'], unique=False)
    op.create_table('api_idempotency',
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=24), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reseller_id', 'key')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('rate_per_second', sa.Integer(), nullable=False),
    sa.Column('vault_key', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.LargeBinary(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id')
    )
    op.create_table('api_nonces',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'nonce')
    )
    op.create_index('ix_api_nonces_seen', 'api_nonces', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_api_nonces_seen', table_name='api_nonces')
    op.drop_table('api_nonces')
    op.drop_table('api_keys')
    op.drop_table('api_idempotency')
    op.drop_index('ix_wallet_ledger_reseller', table_name='wallet_ledger')
    op.drop_table('wallet_ledger')
    op.drop_table('resellers')
