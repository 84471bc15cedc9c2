import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';

/**
 * Every resource an operator writes or reads, as a schema and a type of the same name.
 * Objects are closed (`additionalProperties: false`), so a misspelt field is an error, not a no-op.
 */
const closed = { additionalProperties: false } as const;

export const API_VERSION = 'driftless/v1';

/** A closed set of strings: the schema validates it and the type lists it. */
export function oneOf<const T extends readonly string[]>(values: T): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(values.map((value) => Type.Literal(value))) as TUnion<TLiteral<T[number]>[]>;
}

export const Name = Type.String({
  pattern: '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$',
  description: 'lower-case letters, digits, "-" and ".", 1 to 63 characters, starting and ending alphanumeric',
});
export const LabelKey = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$' });
// Closed: a record's key pattern only constrains keys that match it, so without this any key would pass.
export const Labels = Type.Record(LabelKey, Type.String({ maxLength: 253 }), closed);
export type Labels = Static<typeof Labels>;

export const Metadata = Type.Object(
  { name: Name, labels: Type.Optional(Labels), annotations: Type.Optional(Type.Record(Type.String(), Type.String())) },
  closed,
);
export type Metadata = Static<typeof Metadata>;

const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const HttpProbe = Type.Object(
  {
    port: Port,
    path: Type.Optional(Type.String({ pattern: '^/' })),
    host: Type.Optional(Type.String({ minLength: 1 })),
    expectStatus: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  },
  closed,
);
export const TcpProbe = Type.Object({ port: Port, host: Type.Optional(Type.String({ minLength: 1 })) }, closed);
export const RunningProbe = Type.Object({ seconds: Type.Number({ minimum: 0, maximum: 3600 }) }, closed);

/** How the agent decides that a new version works. At most one probe kind; none means "running". */
export const HealthCheck = Type.Object(
  {
    http: Type.Optional(HttpProbe),
    tcp: Type.Optional(TcpProbe),
    command: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    running: Type.Optional(RunningProbe),
    timeoutSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 3600 })),
    intervalSeconds: Type.Optional(Type.Number({ minimum: 0.1, maximum: 600 })),
  },
  closed,
);
export type HealthCheck = Static<typeof HealthCheck>;

export const PortMapping = Type.String({
  pattern: '^([0-9]{1,5}:)?[0-9]{1,5}(/(tcp|udp))?$',
  description: 'host:container, as Docker and Compose write it',
});
export const VolumeMount = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*:/[^:]*(:(ro|rw))?$',
  description: 'a named volume and its path: "data:/var/lib/app"',
});

/** A SHA-256 digest in lower-case hex: how an uploaded artifact is named. */
export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'a SHA-256 digest, 64 lower-case hex digits' });

/** The Driftless agent itself as a component: a release uploaded with `driftless artifact push`. */
export const AgentRelease = Type.Object({ artifact: Sha256Hex }, closed);

/** One piece of software on a device: a container (`image`), a supervised native process (`command`) or the agent itself (`agent`). */
export const Component = Type.Object(
  {
    name: Name,
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    image: Type.Optional(Type.String({ minLength: 1 })),
    agent: Type.Optional(AgentRelease),
    command: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    workingDir: Type.Optional(Type.String({ minLength: 1 })),
    ports: Type.Optional(Type.Array(PortMapping)),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), closed)),
    volumes: Type.Optional(Type.Array(VolumeMount)),
    health: Type.Optional(HealthCheck),
  },
  closed,
);
export type Component = Static<typeof Component>;

export const Selector = Type.Object(
  { matchLabels: Type.Optional(Labels), sites: Type.Optional(Type.Array(Name)) },
  closed,
);
export type Selector = Static<typeof Selector>;

/**
 * A release key's signature over a template, as `driftless release sign` writes it: the key can
 * live offline, so a server whose own key was stolen cannot make one (protocol/release.ts).
 */
export const ReleaseSignature = Type.Object(
  {
    keyId: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'the release key that signed' }),
    signature: Type.String({ pattern: '^[A-Za-z0-9+/=]+$', maxLength: 4096 }),
    /** After this time no device installs the release anew (what runs keeps running). */
    expires: Type.Optional(Type.String({ format: 'date-time', minLength: 20, maxLength: 40 })),
  },
  closed,
);
export type ReleaseSignature = Static<typeof ReleaseSignature>;

export const Template = Type.Object(
  { version: Type.String({ minLength: 1, maxLength: 128 }), components: Type.Array(Component, { minItems: 1 }), release: Type.Optional(ReleaseSignature) },
  closed,
);
export type Template = Static<typeof Template>;

export const Wave = Type.Object(
  {
    devices: Type.Optional(Type.Integer({ minimum: 1 })),
    percent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
    bake: Type.Optional(Type.String({ pattern: '^[0-9]+(s|m|h)$' })),
  },
  closed,
);
export const Strategy = Type.Object(
  {
    waves: Type.Optional(Type.Array(Wave, { minItems: 1 })),
    maxFailurePercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    onFailure: Type.Optional(oneOf(['rollback', 'pause'] as const)),
    maxParallel: Type.Optional(Type.Integer({ minimum: 1 })),
    /** A device that got the revision and has not reported it healthy after this long counts as failed. */
    updateTimeout: Type.Optional(Type.String({ pattern: '^[0-9]+(s|m|h)$' })),
  },
  closed,
);
export type Strategy = Static<typeof Strategy>;

export const DeploymentSpec = Type.Object(
  { selector: Selector, template: Template, strategy: Type.Optional(Strategy) },
  closed,
);
export type DeploymentSpec = Static<typeof DeploymentSpec>;

export const MaintenanceWindow = Type.Object(
  {
    days: Type.Optional(Type.Array(oneOf(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const))),
    start: Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
    duration: Type.String({ pattern: '^[0-9]+(m|h)$' }),
  },
  closed,
);
export const SiteSpec = Type.Object(
  {
    timeZone: Type.Optional(Type.String({ minLength: 1 })),
    region: Type.Optional(Type.String({ minLength: 1 })),
    maintenanceWindows: Type.Optional(Type.Array(MaintenanceWindow)),
  },
  closed,
);
export type SiteSpec = Static<typeof SiteSpec>;

/** What an operator may change on a device the agent registered: its site and labels. */
export const DeviceSpec = Type.Object({ site: Type.Optional(Name) }, closed);

function resource<K extends string, S extends TSchema>(kind: K, spec: S) {
  return Type.Object(
    { apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(kind), metadata: Metadata, spec },
    closed,
  );
}

export const DeploymentResource = resource('Deployment', DeploymentSpec);
export type DeploymentResource = Static<typeof DeploymentResource>;
export const SiteResource = Type.Object(
  { apiVersion: Type.Literal(API_VERSION), kind: Type.Literal('Site'), metadata: Metadata, spec: Type.Optional(SiteSpec) },
  closed,
);
export type SiteResource = Static<typeof SiteResource>;
export const DeviceResource = Type.Object(
  { apiVersion: Type.Literal(API_VERSION), kind: Type.Literal('Device'), metadata: Metadata, spec: Type.Optional(DeviceSpec) },
  closed,
);
export type DeviceResource = Static<typeof DeviceResource>;

/** The kinds `driftless apply` accepts, keyed by `kind`. */
export const applicableKinds = {
  Deployment: DeploymentResource,
  Site: SiteResource,
  Device: DeviceResource,
} as const;
export type ApplicableKind = keyof typeof applicableKinds;
export type AppliedResource = DeploymentResource | SiteResource | DeviceResource;

// ---- What the API reports (read-only views) ----

export const componentStates = ['pending', 'applying', 'healthy', 'failed', 'reverted', 'unknown'] as const;
export const ComponentState = oneOf(componentStates);
export type ComponentState = Static<typeof ComponentState>;

/** Why a device's component is not (yet) what it should be: the reasons operators see. */
export const driftReasons = [
  'offline',
  'applying',
  'health-check-failed',
  'download-failed',
  'start-failed',
  'waiting-for-window',
  'held-by-rollout',
  'reverted',
  'local-change',
  'not-reported',
] as const;
export type DriftReason = (typeof driftReasons)[number];
export const DriftReasonSchema = oneOf(driftReasons);

export const DeviceComponentView = Type.Object({
  name: Type.String(),
  deployment: Type.String(),
  desiredVersion: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  state: ComponentState,
  reason: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  since: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});
export type DeviceComponentView = Static<typeof DeviceComponentView>;

export const DeviceView = Type.Object({
  name: Type.String(),
  site: Type.Union([Type.String(), Type.Null()]),
  labels: Labels,
  status: Type.String(),
  online: Type.Boolean(),
  lastSeen: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: Type.String(),
  facts: Type.Record(Type.String(), Type.Unknown()),
  generation: Type.Integer(),
  appliedGeneration: Type.Integer(),
  components: Type.Array(DeviceComponentView),
});
export type DeviceView = Static<typeof DeviceView>;

export const DriftEntry = Type.Object({
  device: Type.String(),
  site: Type.Union([Type.String(), Type.Null()]),
  component: Type.String(),
  deployment: Type.String(),
  desiredVersion: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String(),
  detail: Type.String(),
  since: Type.Union([Type.String(), Type.Null()]),
});
export type DriftEntry = Static<typeof DriftEntry>;

export const rolloutStates = ['pending', 'progressing', 'paused', 'halted', 'rolled-back', 'complete', 'superseded'] as const;
export const RolloutState = oneOf(rolloutStates);
export const RolloutWaveView = Type.Object({
  index: Type.Integer(),
  devices: Type.Integer(),
  updated: Type.Integer(),
  failed: Type.Integer(),
  state: Type.String(),
});
export const RolloutView = Type.Object({
  name: Type.String(),
  deployment: Type.String(),
  revision: Type.Integer(),
  state: RolloutState,
  waves: Type.Array(RolloutWaveView),
  reason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type RolloutView = Static<typeof RolloutView>;

export const DeploymentView = Type.Object({
  name: Type.String(),
  labels: Labels,
  spec: DeploymentSpec,
  revision: Type.Integer(),
  targetRevision: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  revisions: Type.Optional(
    Type.Array(Type.Object({ revision: Type.Integer(), version: Type.String(), createdAt: Type.String() })),
  ),
});
export type DeploymentView = Static<typeof DeploymentView>;

export const SiteView = Type.Object({
  name: Type.String(),
  labels: Labels,
  spec: SiteSpec,
  devices: Type.Integer(),
  createdAt: Type.String(),
});
export type SiteView = Static<typeof SiteView>;
