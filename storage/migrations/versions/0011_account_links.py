"""account links: one person's accounts on several channels linked by a one-time code (account_links), and the
codes themselves, stored as keyed hashes (link_codes)

Revision ID: 0011_account_links
Revises: 0007_aftersales_more
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_account_links'
down_revision = '0007_aftersales_more'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_links',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('person', sa.String(length=24), nullable=False),
    sa.Column('link_set', sa.String(length=24), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'external_id')
    )
    op.create_index('ix_account_links_person', 'account_links', ['person'], unique=False)
    op.create_index('ix_account_links_set', 'account_links', ['link_set'], unique=False)
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
    op.drop_index('ix_account_links_set', table_name='account_links')
    op.drop_index('ix_account_links_person', table_name='account_links')
    op.drop_table('account_links')
