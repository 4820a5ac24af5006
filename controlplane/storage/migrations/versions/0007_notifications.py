"""Notifications: the message outbox, the audit cursor and used approval links; each
signal's last value and expected band (exported as vmanomaly-style series); maintenance
windows; actions proposed by agents; per-client access records for security detection

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:25:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_point',
    sa.Column('access_point_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=False),
    sa.Column('route', sa.String(length=255), nullable=False),
    sa.Column('client', sa.String(length=255), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('denied', sa.Integer(), nullable=False),
    sa.Column('throttled', sa.Integer(), nullable=False),
    sa.Column('user_agent', sa.String(length=255), nullable=False),
    sa.Column('unrouted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('access_point_id'),
    sa.UniqueConstraint('service', 'route', 'client', 'minute', name='ux_access_point')
    )
    with op.batch_alter_table('access_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_point_client'), ['client'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_point_minute'), ['minute'], unique=False)

    op.create_table('proposal',
    sa.Column('proposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('proposed_by', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('proposal_id')
    )
    with op.batch_alter_table('proposal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposal_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_status'), ['status'], unique=False)

    op.create_table('maintenance_window',
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=True),
    sa.Column('namespace', sa.String(length=255), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recurrence', sa.String(length=100), nullable=True),
    sa.Column('duration_minutes', sa.Double(), nullable=True),
    sa.Column('mute_paging', sa.Boolean(), nullable=False),
    sa.Column('automation', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('window_id')
    )
    with op.batch_alter_table('maintenance_window', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_maintenance_window_ends_at'), ['ends_at'], unique=False)

    op.create_table('approval_link_use',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('decision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('used_by', sa.String(length=255), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nonce')
    )
    with op.batch_alter_table('approval_link_use', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_link_use_decision_id'), ['decision_id'], unique=False)

    op.create_table('cursor',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('message',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('group_key', sa.String(length=255), nullable=True),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('route', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('events', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('receipt', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('message_id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('signal_state', schema=None) as batch_op:
        for column in ('last_value', 'yhat', 'yhat_lower', 'yhat_upper'):
            batch_op.add_column(sa.Column(column, sa.Double(), nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_channel'), ['channel'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_group_key'), ['group_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index('ix_message_status_next', ['status', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('access_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_point_minute'))
        batch_op.drop_index(batch_op.f('ix_access_point_client'))
    op.drop_table('access_point')
    with op.batch_alter_table('proposal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposal_status'))
        batch_op.drop_index(batch_op.f('ix_proposal_incident_id'))
    op.drop_table('proposal')
    with op.batch_alter_table('maintenance_window', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_maintenance_window_ends_at'))
    op.drop_table('maintenance_window')
    with op.batch_alter_table('signal_state', schema=None) as batch_op:
        for column in ('last_value', 'yhat', 'yhat_lower', 'yhat_upper'):
            batch_op.drop_column(column)
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_status_next')
        batch_op.drop_index(batch_op.f('ix_message_incident_id'))
        batch_op.drop_index(batch_op.f('ix_message_group_key'))
        batch_op.drop_index(batch_op.f('ix_message_channel'))

    op.drop_table('message')
    op.drop_table('cursor')
    with op.batch_alter_table('approval_link_use', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approval_link_use_decision_id'))

    op.drop_table('approval_link_use')
