"""Coordination across workers: live members, signal owners, leases on singleton work, and
the open anomaly episode kept with each signal's state for the next owner.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 15:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker',
    sa.Column('worker_id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_heartbeat_at'), ['heartbeat_at'], unique=False)

    op.create_table('signal_owner',
    sa.Column('signal', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('signal')
    )
    with op.batch_alter_table('signal_owner', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signal_owner_owner'), ['owner'], unique=False)

    op.create_table('lease',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('signal_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('episode', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('signal_state', schema=None) as batch_op:
        batch_op.drop_column('episode')
    op.drop_table('lease')
    with op.batch_alter_table('signal_owner', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signal_owner_owner'))
    op.drop_table('signal_owner')
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_heartbeat_at'))
    op.drop_table('worker')
