"""Policy decisions and their executions, and the automation kill switch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 03:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('decision',
    sa.Column('decision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('policy_version', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('checks', JSON, nullable=False),
    sa.Column('plan', JSON, nullable=True),
    sa.Column('runbook', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_by', sa.String(length=255), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('review_comment', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', JSON, nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.incident_id'], ),
    sa.PrimaryKeyConstraint('decision_id'),
    sa.UniqueConstraint('incident_id', 'policy', name='ux_decision_incident_policy')
    )
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.create_index('ix_decision_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_target'), ['target'], unique=False)

    op.create_table('automation_state',
    sa.Column('automation_state_id', sa.Integer(), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('changed_by', sa.String(length=255), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('automation_state_id')
    )


def downgrade() -> None:
    op.drop_table('automation_state')
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_target'))
        batch_op.drop_index(batch_op.f('ix_decision_incident_id'))
        batch_op.drop_index('ix_decision_status_created')

    op.drop_table('decision')
