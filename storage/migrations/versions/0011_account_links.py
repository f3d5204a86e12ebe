"""account links: one person's accounts on several channels linked by a one-time code (customers.person,
link_set, linked_at), and the codes themselves, stored as keyed hashes (link_codes)

Revision ID: 0011_account_links
Revises: 0011_wechat_nonces
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_account_links'
down_revision = '0011_wechat_nonces'  # re-chained on merge: both branches started at 0007
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('link_set', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_customers_person', ['person'], unique=False)
        batch_op.create_index('ix_customers_link_set', ['link_set'], unique=False)
    op.create_table('link_codes',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sa.String(length=96), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index('ix_link_codes_owner', 'link_codes', ['channel', 'external_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_link_codes_owner', table_name='link_codes')
    op.drop_table('link_codes')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_link_set')
        batch_op.drop_index('ix_customers_person')
        batch_op.drop_column('linked_at')
        batch_op.drop_column('link_set')
        batch_op.drop_column('person')
