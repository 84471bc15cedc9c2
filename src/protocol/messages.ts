import { Type, type Static } from '@sinclair/typebox';
import { ArtifactRef } from './artifacts.ts';
import { SignedRelease } from './release.ts';
import { Component, ComponentState, Labels, Name } from './resources.ts';

/**
 * Every message between agent and server. The agent pulls one signed desired-state document;
 * it pushes status reports whose events carry sequence numbers so a resend is harmless.
 */
const closed = { additionalProperties: false } as const;
const IsoTime = Type.String({ format: 'date-time', minLength: 20, maxLength: 40 });
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/=]+$', maxLength: 4096 });

export const Facts = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]));
export type Facts = Static<typeof Facts>;

export const EnrollRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 256 }),
    name: Name,
    site: Type.Optional(Name),
    labels: Type.Optional(Labels),
    facts: Type.Optional(Facts),
    publicKey: Base64,
  },
  closed,
);
export type EnrollRequest = Static<typeof EnrollRequest>;

export const EnrollResponse = Type.Object({
  device: Type.String(),
  serverKey: Type.String({ description: "the server's Ed25519 signing key (SPKI, base64), pinned by the agent" }),
  pollSeconds: Type.Number(),
});
export type EnrollResponse = Static<typeof EnrollResponse>;

/** A device proves it holds its enrolled key and gets a short-lived session token. */
export const SessionRequest = Type.Object(
  { device: Name, timestamp: IsoTime, signature: Base64 },
  closed,
);
export type SessionRequest = Static<typeof SessionRequest>;

export const SessionResponse = Type.Object({ token: Type.String(), expiresAt: Type.String() });
export type SessionResponse = Static<typeof SessionResponse>;

/** One component as the device must run it: the template's component plus where it came from. */
export const DesiredComponent = Type.Composite([
  Component,
  Type.Object({
    deployment: Name,
    revision: Type.Integer({ minimum: 1 }),
    version: Type.String({ minLength: 1 }),
    /** For an `agent` component: the release, resolved and signed by the server. */
    artifact: Type.Optional(ArtifactRef),
  }),
]);
export type DesiredComponent = Static<typeof DesiredComponent>;

export const DesiredState = Type.Object(
  {
    device: Name,
    generation: Type.Integer({ minimum: 1 }),
    issuedAt: IsoTime,
    components: Type.Array(DesiredComponent),
    /** An empty component list is obeyed only when the server says so; never inferred. */
    removeAll: Type.Optional(Type.Boolean()),
    /** After this the document is not trusted for new changes (freeze protection); the server renews it before. */
    expiresAt: Type.Optional(IsoTime),
    /** The operator's signed releases the components come from (protocol/release.ts). */
    releases: Type.Optional(Type.Array(SignedRelease, { maxItems: 1000 })),
    /** The release keys (SPKI, base64) a device pins the first time it sees them. */
    releaseKeys: Type.Optional(Type.Array(Base64, { minItems: 1, maxItems: 16 })),
  },
  closed,
);
export type DesiredState = Static<typeof DesiredState>;

export const SignedDesiredState = Type.Object(
  { payload: DesiredState, keyId: Type.String({ maxLength: 64 }), signature: Base64 },
  closed,
);
export type SignedDesiredState = Static<typeof SignedDesiredState>;

export const ComponentStatus = Type.Object(
  {
    name: Name,
    deployment: Name,
    desiredVersion: Type.Union([Type.String(), Type.Null()]),
    /** The Deployment revision the device was told to run: how the rollout engine tells revisions with the same version apart. */
    desiredRevision: Type.Optional(Type.Integer({ minimum: 1 })),
    version: Type.Union([Type.String(), Type.Null()]),
    state: ComponentState,
    reason: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]),
    detail: Type.Union([Type.String({ maxLength: 2000 }), Type.Null()]),
    since: IsoTime,
  },
  closed,
);
export type ComponentStatus = Static<typeof ComponentStatus>;

export const eventTypes = [
  'committed',
  'reverted',
  'local-change',
  'desired-state-refused',
  'start-failed',
  'health-check-failed',
  'restarted',
  'agent-update-failed',
  'agent-updated',
] as const;

export const DeviceEvent = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    at: IsoTime,
    type: Type.Union(eventTypes.map((t) => Type.Literal(t))),
    component: Type.Optional(Type.String({ maxLength: 200 })),
    message: Type.String({ maxLength: 2000 }),
  },
  closed,
);
export type DeviceEvent = Static<typeof DeviceEvent>;

export const StatusReport = Type.Object(
  {
    /** The generation of the desired state the agent last trusted (0 before the first). */
    generation: Type.Integer({ minimum: 0 }),
    reportedAt: IsoTime,
    components: Type.Array(ComponentStatus, { maxItems: 1000 }),
    events: Type.Array(DeviceEvent, { maxItems: 1000 }),
    facts: Type.Optional(Facts),
  },
  closed,
);
export type StatusReport = Static<typeof StatusReport>;

export const StatusAck = Type.Object({ ackedSeq: Type.Integer() });
export type StatusAck = Static<typeof StatusAck>;

/**
 * Telemetry: everything the device records for later (component output, host and component
 * metrics, events) travels in sequence-numbered batches from its durable outbox. One sequence per
 * device covers every kind, so the server keeps a single high-water mark: a record at or below it
 * was already stored (a resend after a lost answer), one above it is new.
 */
export const LogRecord = Type.Object(
  { seq: Type.Integer({ minimum: 1 }), at: IsoTime, kind: Type.Literal('log'), component: Type.String({ minLength: 1, maxLength: 200 }), line: Type.String({ maxLength: 8192 }) },
  closed,
);
export type LogRecord = Static<typeof LogRecord>;

export const MetricRecord = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    at: IsoTime,
    kind: Type.Literal('metric'),
    /** Absent for host metrics. */
    component: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    name: Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }),
    value: Type.Number(),
  },
  closed,
);
export type MetricRecord = Static<typeof MetricRecord>;

export const EventRecord = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    at: IsoTime,
    kind: Type.Literal('event'),
    type: Type.Union(eventTypes.map((t) => Type.Literal(t))),
    component: Type.Optional(Type.String({ maxLength: 200 })),
    message: Type.String({ maxLength: 2000 }),
  },
  closed,
);
export type EventRecord = Static<typeof EventRecord>;

export const TelemetryRecord = Type.Union([LogRecord, MetricRecord, EventRecord]);
export type TelemetryRecord = Static<typeof TelemetryRecord>;

export const TelemetryBatch = Type.Object(
  {
    records: Type.Array(TelemetryRecord, { maxItems: 5000 }),
    /** Records the device had to drop (its outbox was full) since it enrolled: a running total, so a resend cannot double it. */
    dropped: Type.Integer({ minimum: 0 }),
  },
  closed,
);
export type TelemetryBatch = Static<typeof TelemetryBatch>;

/** Everything up to `ackedSeq` is stored; the device may forget it. */
export const TelemetryAck = Type.Object({ ackedSeq: Type.Integer({ minimum: 0 }) });
export type TelemetryAck = Static<typeof TelemetryAck>;
