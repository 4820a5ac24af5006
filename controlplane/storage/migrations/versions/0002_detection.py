"""Detection: anomaly evidence, signal state, RED points and service edges from spans.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 02:09:05.446027
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('red_point',
    sa.Column('red_point_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=False),
    sa.Column('operation', sa.String(length=255), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('latency_buckets', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('red_point_id'),
    sa.UniqueConstraint('service', 'operation', 'minute', name='ux_red_point')
    )
    with op.batch_alter_table('red_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_red_point_minute'), ['minute'], unique=False)

    op.create_table('service_edge',
    sa.Column('service_edge_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('caller', sa.String(length=255), nullable=False),
    sa.Column('callee', sa.String(length=255), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('service_edge_id'),
    sa.UniqueConstraint('caller', 'callee', 'minute', name='ux_service_edge')
    )
    with op.batch_alter_table('service_edge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_edge_minute'), ['minute'], unique=False)

    op.create_table('signal_state',
    sa.Column('signal', sa.String(length=200), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('detector', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_point_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_score', sa.Double(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('signal')
    )
    op.create_table('evidence',
    sa.Column('evidence_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('signal', sa.String(length=200), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=False),
    sa.Column('onset_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('peak_score', sa.Double(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.incident_id'], ),
    sa.PrimaryKeyConstraint('evidence_id')
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_incident_id'), ['incident_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_incident_id'))

    op.drop_table('evidence')
    op.drop_table('signal_state')
    with op.batch_alter_table('service_edge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_edge_minute'))

    op.drop_table('service_edge')
    with op.batch_alter_table('red_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_red_point_minute'))

    op.drop_table('red_point')
