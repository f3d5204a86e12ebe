"""card faces: a reseller's custom card face (定制卡面) and the chat users bound to a reseller

Revision ID: 0010_card_faces
Revises: 0006_resellers
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_card_faces'
down_revision = '0006_resellers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_faces',
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('background', sa.String(length=7), nullable=False),
    sa.Column('background_image', sa.Text(), server_default='', nullable=False),
    sa.Column('logo', sa.Text(), server_default='', nullable=False),
    sa.Column('font', sa.Text(), server_default='', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('reseller_id')
    )
    op.create_table('reseller_users',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['resellers.id']),
    sa.PrimaryKeyConstraint('channel', 'external_id')
    )
    op.create_index('ix_reseller_users_reseller', 'reseller_users', ['reseller_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reseller_users_reseller', table_name='reseller_users')
    op.drop_table('reseller_users')
    op.drop_table('card_faces')
