/**
 * Deterministic, realistic Pod objects for the benchmarks (~3.5–4 KB of JSON each: labels,
 * annotations, an ownerReference, two managedFields entries, a container with ports and
 * resources, volumes, tolerations, conditions and containerStatuses).
 *
 * Everything is derived from a seeded PRNG and the pod's index, so every run of every client
 * sees byte-identical data.
 *
 * @module
 */

/** The annotation the paced stream stamps with the server's send time (ms since the epoch). */
export const SENT_AT_ANNOTATION = "bench.denokube.dev/sent-at";

/** Fixed-width placeholder of the send time, patched in place by the server. */
export const SENT_AT_PLACEHOLDER = "0000000000000.000000";

/** Namespaces the pods are spread over. */
export const NAMESPACES = 20;

/** A small seeded PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hex(rand: () => number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += Math.floor(rand() * 16).toString(16);
  return s;
}

function uid(rand: () => number): string {
  return `${hex(rand, 8)}-${hex(rand, 4)}-4${hex(rand, 3)}-a${hex(rand, 3)}-${hex(rand, 12)}`;
}

function time(base: number, offsetS: number): string {
  return new Date(base + offsetS * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

const APPS = ["checkout", "cart", "catalog", "search", "payments", "ledger", "auth", "gateway"];
const T0 = Date.UTC(2025, 5, 1, 8, 0, 0);

/** Options of {@linkcode makePod}. */
export interface PodOptions {
  /** The pod's resource version. */
  resourceVersion: number;
  /** A change counter: varies status fields, as a MODIFIED event would. */
  revision?: number;
  /** Adds the send-time annotation with a fixed-width placeholder value. */
  sentAt?: boolean;
}

/**
 * Builds pod number `index` (its name, uid, namespace and most fields depend only on `index`).
 *
 * @param index The pod's index; names and uids are unique per index.
 * @param options Resource version and revision.
 * @returns The pod, as a plain object.
 */
export function makePod(index: number, options: PodOptions): Record<string, unknown> {
  const rand = prng(0x9e3779b9 ^ index);
  const revision = options.revision ?? 0;
  const app = APPS[index % APPS.length];
  const namespace = `team-${index % NAMESPACES}`;
  const rs = hex(rand, 10);
  const name = `${app}-${rs}-${index.toString(36).padStart(5, "0")}`;
  const created = T0 + Math.floor(rand() * 86400) * 1000;
  const started = (created - T0) / 1000 + 3;
  const node = `ip-10-${index % 7}-${(index >> 3) % 250}-${index % 251}.eu-west-1.compute.internal`;
  const image = `registry.example.com/shop/${app}:1.${index % 17}.${revision % 9}`;
  const ready = revision % 4 !== 3;
  const annotations: Record<string, string> = {
    "kubectl.kubernetes.io/restartedAt": time(T0, -3600),
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "9090",
    "checksum/config": hex(rand, 64),
  };
  if (options.sentAt) annotations[SENT_AT_ANNOTATION] = SENT_AT_PLACEHOLDER;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      generateName: `${app}-${rs}-`,
      namespace,
      uid: uid(rand),
      resourceVersion: String(options.resourceVersion),
      creationTimestamp: time(created, 0),
      labels: {
        app,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "shop",
        "pod-template-hash": rs,
        tier: index % 3 === 0 ? "frontend" : "backend",
      },
      annotations,
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: `${app}-${rs}`,
        uid: uid(rand),
        controller: true,
        blockOwnerDeletion: true,
      }],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: time(created, 0),
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:annotations": {
                ".": {},
                "f:checksum/config": {},
                "f:kubectl.kubernetes.io/restartedAt": {},
              },
              "f:generateName": {},
              "f:labels": { ".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:tier": {} },
              "f:ownerReferences": { ".": {}, [`k:{"uid":"${uid(rand)}"}`]: {} },
            },
            "f:spec": {
              "f:containers": {
                [`k:{"name":"${app}"}`]: {
                  ".": {},
                  "f:image": {},
                  "f:imagePullPolicy": {},
                  "f:name": {},
                  "f:ports": { ".": {}, 'k:{"containerPort":8080,"protocol":"TCP"}': {} },
                  "f:resources": { ".": {}, "f:limits": {}, "f:requests": {} },
                },
              },
              "f:restartPolicy": {},
              "f:tolerations": {},
              "f:volumes": { ".": {}, 'k:{"name":"config"}': {} },
            },
          },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time: time(created, started + revision),
          fieldsType: "FieldsV1",
          subresource: "status",
          fieldsV1: {
            "f:status": {
              "f:conditions": {
                'k:{"type":"ContainersReady"}': { ".": {}, "f:status": {}, "f:type": {} },
                'k:{"type":"Ready"}': { ".": {}, "f:status": {}, "f:type": {} },
              },
              "f:containerStatuses": {},
              "f:hostIP": {},
              "f:phase": {},
              "f:podIP": {},
              "f:startTime": {},
            },
          },
        },
      ],
    },
    spec: {
      containers: [{
        name: app,
        image,
        imagePullPolicy: "IfNotPresent",
        ports: [{ containerPort: 8080, name: "http", protocol: "TCP" }],
        resources: {
          limits: { cpu: "1", memory: "512Mi" },
          requests: { cpu: `${100 + (index % 5) * 50}m`, memory: "256Mi" },
        },
        volumeMounts: [
          { name: "config", mountPath: "/etc/app", readOnly: true },
          {
            name: `kube-api-access-${hex(rand, 5)}`,
            mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            readOnly: true,
          },
        ],
      }],
      volumes: [
        { name: "config", configMap: { name: `${app}-config`, defaultMode: 420 } },
        {
          name: "kube-api-access",
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              {
                configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] },
              },
            ],
          },
        },
      ],
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: app,
      nodeName: node,
    },
    status: {
      phase: "Running",
      conditions: [
        { type: "Initialized", status: "True", lastTransitionTime: time(created, 1) },
        {
          type: "Ready",
          status: ready ? "True" : "False",
          lastTransitionTime: time(created, started + revision),
        },
        {
          type: "ContainersReady",
          status: ready ? "True" : "False",
          lastTransitionTime: time(created, started + revision),
        },
        { type: "PodScheduled", status: "True", lastTransitionTime: time(created, 0) },
      ],
      hostIP: `10.${index % 7}.${(index >> 3) % 250}.${index % 251}`,
      podIP: `100.64.${(index >> 8) & 255}.${index & 255}`,
      startTime: time(created, 1),
      containerStatuses: [{
        name: app,
        state: { running: { startedAt: time(created, started + revision) } },
        ready,
        restartCount: revision,
        image,
        imageID: `registry.example.com/shop/${app}@sha256:${hex(rand, 64)}`,
        containerID: `containerd://${hex(rand, 64)}`,
        started: true,
      }],
      qosClass: "Burstable",
    },
  };
}
