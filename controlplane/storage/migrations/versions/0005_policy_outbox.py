"""The policy outbox: incidents the policy loop has to look at, written with the intake's
commit (a time watermark missed incidents whose commit landed late).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policy_outbox',
    sa.Column('policy_outbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('policy_outbox_id')
    )


def downgrade() -> None:
    op.drop_table('policy_outbox')
