// Protobuf parity on the real kube-apiserver: every built-in kind this test can create is read
// back as JSON and as protobuf (`application/vnd.kubernetes.protobuf`, decoded by _client/protobuf/),
// one by one and as a list, and the two must deep-equal. A watch of a namespace is read in both
// formats too (`;stream=watch` length-delimited frames) and must give the same events.
//
// The decoder is driven with plain requests here, so this test checks the wire format itself,
// independently of how the client negotiates it.

import { deepStrictEqual, ok as assert, strictEqual as assertEquals } from "node:assert/strict";
import { e2eTest, uniqueNamespace } from "./_harness.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { Api, type KubeObject } from "../../api.ts";
import { Reflector } from "../../reflector.ts";
import {
  CompactObject,
  decodeCompactLazy,
  decodeCompactList,
  decodeObject,
  decodeWatchEvent,
  decodeWatchEventCompact,
} from "../../_client/protobuf/decode.ts";
import { FrameDecoder } from "../../_client/protobuf/frames.ts";

const PROTOBUF = "application/vnd.kubernetes.protobuf";

/** A built-in object to create: the collection path (with `{ns}`) and the body. */
interface Fixture {
  path: string;
  body: Record<string, unknown>;
  /** The name of the object (default: body.metadata.name). */
  name?: string;
  /** Only created (reviews): compare the create responses instead of reads. */
  createOnly?: boolean;
}

/** A fresh PEM certificate signing request, made by openssl. */
async function makeCsr(): Promise<string> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=parity",
      "-keyout",
      "/dev/null",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) throw new Error("openssl req failed");
  return new TextDecoder().decode(out.stdout);
}

function fixtures(ns: string, csr: string): Fixture[] {
  const labels = { app: "parity", "app.kubernetes.io/part-of": "protobuf" };
  const podSpec = {
    containers: [{
      name: "app",
      image: "registry.example.com/app:1.0",
      command: ["/bin/app", "--serve"],
      env: [
        { name: "MODE", value: "prod" },
        { name: "EMPTY", value: "" },
        { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        {
          name: "LIMIT",
          valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
        },
      ],
      ports: [{ containerPort: 8080, name: "http" }, { containerPort: 9090, protocol: "UDP" }],
      resources: {
        limits: { cpu: "1500m", memory: "512Mi", "ephemeral-storage": "2G" },
        requests: { cpu: "0.25", memory: "268435456" },
      },
      livenessProbe: {
        httpGet: { path: "/healthz", port: "http", httpHeaders: [{ name: "X", value: "y" }] },
        initialDelaySeconds: 0,
        periodSeconds: 7,
      },
      readinessProbe: { tcpSocket: { port: 8080 }, failureThreshold: 1 },
      startupProbe: { exec: { command: ["true"] }, terminationGracePeriodSeconds: 5 },
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: false,
        capabilities: { drop: ["ALL"] },
      },
      volumeMounts: [{ name: "config", mountPath: "/etc/app", readOnly: true }],
      lifecycle: { preStop: { sleep: { seconds: 2 } } },
    }],
    volumes: [
      { name: "config", configMap: { name: "app-config", defaultMode: 0o644, optional: false } },
      { name: "scratch", emptyDir: { sizeLimit: "1Gi", medium: "" } },
      {
        name: "proj",
        projected: {
          sources: [
            { configMap: { name: "app-config", items: [{ key: "config.yaml", path: "c" }] } },
            {
              downwardAPI: {
                items: [{ path: "labels", fieldRef: { fieldPath: "metadata.labels" } }],
              },
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
      { operator: "Exists" },
    ],
    affinity: {
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{
          weight: 10,
          preference: { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] },
        }],
      },
    },
    nodeSelector: { "kubernetes.io/os": "linux" },
    priorityClassName: "",
    terminationGracePeriodSeconds: 30,
    hostNetwork: false,
    dnsConfig: { options: [{ name: "ndots", value: "2" }, { name: "edns0" }] },
  };
  const template = { metadata: { labels }, spec: podSpec };
  const selector = { matchLabels: labels };
  return [
    {
      path: "/api/v1/namespaces/{ns}/configmaps",
      body: {
        metadata: { name: "app-config", labels, annotations: { "a.b/c": "" } },
        data: { "__proto__": "x", "config.yaml": "a: 1\n", empty: "" },
        binaryData: { blob: "AAECAwQF/w==" },
      },
    },
    { path: "/api/v1/namespaces/{ns}/configmaps", body: { metadata: { name: "empty-config" } } },
    {
      path: "/api/v1/namespaces/{ns}/secrets",
      body: {
        metadata: { name: "s" },
        type: "Opaque",
        data: { k: "c2VjcmV0", e: "" },
        stringData: { t: "text" },
        immutable: false,
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/pods",
      body: {
        metadata: { name: "rich", labels, finalizers: ["parity.example.com/hold"] },
        spec: podSpec,
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/pods",
      body: { metadata: { name: "tiny" }, spec: { containers: [{ name: "c", image: "i" }] } },
    },
    {
      path: "/api/v1/namespaces/{ns}/services",
      body: {
        metadata: { name: "svc" },
        spec: {
          selector: labels,
          ports: [{ name: "http", port: 80, targetPort: "http" }, {
            name: "m",
            port: 9090,
            targetPort: 9091,
            protocol: "TCP",
          }],
          sessionAffinity: "ClientIP",
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
        },
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/services",
      body: {
        metadata: { name: "headless" },
        spec: { clusterIP: "None", ports: [{ port: 5432 }] },
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/serviceaccounts",
      body: {
        metadata: { name: "sa" },
        automountServiceAccountToken: false,
        imagePullSecrets: [{ name: "pull" }],
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/endpoints",
      body: {
        metadata: { name: "ep" },
        subsets: [{
          addresses: [{ ip: "10.0.0.1", hostname: "a" }],
          ports: [{ port: 80, name: "http" }],
        }],
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/events",
      body: {
        metadata: { name: "ev" },
        involvedObject: { kind: "Pod", name: "rich", namespace: ns },
        reason: "Test",
        message: "hello",
        type: "Normal",
        count: 3,
        firstTimestamp: "2025-06-01T08:00:00Z",
        lastTimestamp: "2025-06-01T09:00:00Z",
        eventTime: "2025-06-01T09:00:00.123456Z",
        action: "Probe",
        reportingComponent: "parity",
        reportingInstance: "x",
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/limitranges",
      body: {
        metadata: { name: "lr" },
        spec: {
          limits: [{
            type: "Container",
            max: { cpu: "2" },
            default: { memory: "1Gi" },
            maxLimitRequestRatio: { cpu: "10" },
          }],
        },
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/resourcequotas",
      body: {
        metadata: { name: "rq" },
        spec: {
          hard: { pods: "100", "requests.cpu": "10" },
          scopeSelector: {
            matchExpressions: [{ operator: "In", scopeName: "PriorityClass", values: ["high"] }],
          },
        },
      },
    },
    {
      path: "/api/v1/namespaces/{ns}/persistentvolumeclaims",
      body: {
        metadata: { name: "pvc" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "1Gi" } },
          storageClassName: "",
        },
      },
    },
    { path: "/api/v1/namespaces/{ns}/podtemplates", body: { metadata: { name: "pt" }, template } },
    {
      path: "/api/v1/namespaces/{ns}/replicationcontrollers",
      body: { metadata: { name: "rc" }, spec: { replicas: 0, selector: labels, template } },
    },
    {
      path: "/api/v1/persistentvolumes",
      body: {
        metadata: { name: `pv-${ns}` },
        spec: {
          capacity: { storage: "5Gi" },
          accessModes: ["ReadWriteMany"],
          hostPath: { path: "/tmp/pv", type: "" },
          persistentVolumeReclaimPolicy: "Retain",
          mountOptions: ["ro"],
        },
      },
    },
    {
      path: "/api/v1/nodes",
      body: {
        metadata: { name: `node-${ns}`, labels: { "kubernetes.io/hostname": "n" } },
        spec: {
          podCIDR: "10.1.0.0/24",
          podCIDRs: ["10.1.0.0/24"],
          taints: [{ key: "k", value: "v", effect: "NoSchedule" }],
          unschedulable: true,
        },
      },
    },
    {
      path: "/apis/apps/v1/namespaces/{ns}/deployments",
      body: {
        metadata: { name: "web", labels },
        spec: {
          replicas: 2,
          selector,
          template,
          strategy: {
            type: "RollingUpdate",
            rollingUpdate: { maxSurge: "25%", maxUnavailable: 0 },
          },
          revisionHistoryLimit: 3,
        },
      },
    },
    {
      path: "/apis/apps/v1/namespaces/{ns}/statefulsets",
      body: {
        metadata: { name: "db" },
        spec: {
          serviceName: "headless",
          replicas: 1,
          selector,
          template,
          volumeClaimTemplates: [{
            metadata: { name: "data" },
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
          }],
          persistentVolumeClaimRetentionPolicy: { whenDeleted: "Delete" },
        },
      },
    },
    {
      path: "/apis/apps/v1/namespaces/{ns}/daemonsets",
      body: {
        metadata: { name: "agent" },
        spec: { selector, template, updateStrategy: { rollingUpdate: { maxUnavailable: "10%" } } },
      },
    },
    {
      path: "/apis/apps/v1/namespaces/{ns}/replicasets",
      body: {
        metadata: { name: "rs" },
        spec: { replicas: 0, selector, template, minReadySeconds: 5 },
      },
    },
    {
      path: "/apis/apps/v1/namespaces/{ns}/controllerrevisions",
      body: {
        metadata: { name: "rev" },
        revision: 7,
        data: { spec: { template: { metadata: { labels } } }, n: 1.5, z: null, list: [1, "a"] },
      },
    },
    {
      path: "/apis/batch/v1/namespaces/{ns}/jobs",
      body: {
        metadata: { name: "job" },
        spec: {
          suspend: true,
          parallelism: 2,
          backoffLimit: 1,
          activeDeadlineSeconds: 600,
          ttlSecondsAfterFinished: 100,
          template: { spec: { ...podSpec, restartPolicy: "Never" } },
          podFailurePolicy: {
            rules: [{ action: "FailJob", onExitCodes: { operator: "In", values: [42, 43] } }],
          },
        },
      },
    },
    {
      path: "/apis/batch/v1/namespaces/{ns}/cronjobs",
      body: {
        metadata: { name: "cron" },
        spec: {
          schedule: "*/5 * * * *",
          timeZone: "Etc/UTC",
          suspend: true,
          jobTemplate: {
            spec: {
              template: {
                spec: { containers: [{ name: "c", image: "i" }], restartPolicy: "OnFailure" },
              },
            },
          },
        },
      },
    },
    {
      path: "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
      body: {
        metadata: { name: "hpa" },
        spec: {
          scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
          minReplicas: 1,
          maxReplicas: 5,
          metrics: [{
            type: "Resource",
            resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } },
          }, {
            type: "Pods",
            pods: { metric: { name: "qps" }, target: { type: "AverageValue", averageValue: "1k" } },
          }],
          behavior: {
            scaleDown: {
              stabilizationWindowSeconds: 300,
              policies: [{ type: "Percent", value: 10, periodSeconds: 60 }],
            },
          },
        },
      },
    },
    {
      path: "/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers",
      body: {
        metadata: { name: "hpa1" },
        spec: {
          scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
          maxReplicas: 3,
          targetCPUUtilizationPercentage: 50,
        },
      },
    },
    {
      path: "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
      body: { metadata: { name: "pdb" }, spec: { minAvailable: "50%", selector } },
    },
    {
      path: "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
      body: {
        metadata: { name: "np" },
        spec: {
          podSelector: {},
          policyTypes: ["Ingress", "Egress"],
          ingress: [{
            from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }],
            ports: [{ port: "http" }, { port: 53, protocol: "UDP", endPort: 60 }],
          }],
          egress: [{}],
        },
      },
    },
    {
      path: "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
      body: {
        metadata: { name: "ing" },
        spec: {
          ingressClassName: "nginx",
          rules: [{
            host: "a.example.com",
            http: {
              paths: [{
                path: "/",
                pathType: "Prefix",
                backend: { service: { name: "svc", port: { number: 80 } } },
              }],
            },
          }],
          tls: [{ hosts: ["a.example.com"], secretName: "tls" }],
        },
      },
    },
    {
      path: "/apis/networking.k8s.io/v1/ingressclasses",
      body: {
        metadata: { name: `ic-${ns}` },
        spec: {
          controller: "example.com/ingress",
          parameters: { kind: "Params", name: "p", scope: "Cluster" },
        },
      },
    },
    {
      path: "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
      body: {
        metadata: { name: "eps" },
        addressType: "IPv4",
        endpoints: [{ addresses: ["10.0.0.2"], conditions: { ready: true }, zone: "a" }],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
      },
    },
    {
      path: "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
      body: {
        metadata: { name: "lease" },
        spec: {
          holderIdentity: "me",
          leaseDurationSeconds: 15,
          acquireTime: "2025-06-01T08:00:00.000001Z",
          renewTime: "2025-06-01T08:00:10.654321Z",
          leaseTransitions: 0,
        },
      },
    },
    {
      path: "/apis/events.k8s.io/v1/namespaces/{ns}/events",
      body: {
        metadata: { name: "ev2" },
        eventTime: "2025-06-01T09:00:00.500000Z",
        reportingController: "example.com/parity",
        reportingInstance: "x",
        action: "Act",
        reason: "Why",
        regarding: { kind: "Pod", name: "rich", namespace: ns },
        note: "note",
        type: "Warning",
        series: { count: 2, lastObservedTime: "2025-06-01T09:05:00.000000Z" },
      },
    },
    {
      path: "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
      body: {
        metadata: { name: "role" },
        rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }],
      },
    },
    {
      path: "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
      body: {
        metadata: { name: "rb" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "role" },
        subjects: [{ kind: "ServiceAccount", name: "sa", namespace: ns }],
      },
    },
    {
      path: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
      body: {
        metadata: { name: `cr-${ns}` },
        aggregationRule: { clusterRoleSelectors: [{ matchLabels: { agg: ns } }] },
      },
    },
    {
      path: "/apis/scheduling.k8s.io/v1/priorityclasses",
      body: {
        metadata: { name: `pc-${ns}` },
        value: 1000,
        globalDefault: false,
        description: "d",
        preemptionPolicy: "Never",
      },
    },
    {
      path: "/apis/storage.k8s.io/v1/storageclasses",
      body: {
        metadata: { name: `sc-${ns}` },
        provisioner: "example.com/csi",
        parameters: { type: "ssd" },
        reclaimPolicy: "Delete",
        allowVolumeExpansion: true,
        volumeBindingMode: "WaitForFirstConsumer",
        allowedTopologies: [{ matchLabelExpressions: [{ key: "zone", values: ["a"] }] }],
      },
    },
    {
      path: "/apis/storage.k8s.io/v1/csidrivers",
      body: {
        metadata: { name: `csi-${ns}.example.com` },
        spec: {
          attachRequired: false,
          podInfoOnMount: true,
          volumeLifecycleModes: ["Persistent"],
          tokenRequests: [{ audience: "a", expirationSeconds: 3600 }],
        },
      },
    },
    {
      path: "/apis/storage.k8s.io/v1/volumeattachments",
      body: {
        metadata: { name: `va-${ns}` },
        spec: {
          attacher: "csi.example.com",
          nodeName: "n",
          source: { persistentVolumeName: "pv" },
        },
      },
    },
    {
      path: "/apis/node.k8s.io/v1/runtimeclasses",
      body: {
        metadata: { name: `rc-${ns}` },
        handler: "runc",
        overhead: { podFixed: { cpu: "100m" } },
        scheduling: { nodeSelector: { a: "b" }, tolerations: [{ operator: "Exists" }] },
      },
    },
    {
      path: "/apis/certificates.k8s.io/v1/certificatesigningrequests",
      body: {
        metadata: { name: `csr-${ns}` },
        spec: {
          request: btoa(csr),
          signerName: "example.com/signer",
          usages: ["digital signature", "client auth"],
          expirationSeconds: 86400,
        },
      },
    },
    {
      path: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
      body: {
        metadata: { name: `vwc-${ns}` },
        webhooks: [{
          name: "v.example.com",
          clientConfig: { url: "https://example.com/v", caBundle: "AAAA" },
          rules: [{
            operations: ["CREATE"],
            apiGroups: [""],
            apiVersions: ["v1"],
            resources: ["pods"],
            scope: "Namespaced",
          }],
          admissionReviewVersions: ["v1"],
          sideEffects: "None",
          timeoutSeconds: 5,
          failurePolicy: "Ignore",
          namespaceSelector: { matchLabels: { never: ns } },
          matchConditions: [{ name: "c", expression: "true" }],
        }],
      },
    },
    {
      path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
      body: {
        metadata: { name: `vap-${ns}` },
        spec: {
          failurePolicy: "Ignore",
          matchConstraints: {
            resourceRules: [{
              apiGroups: ["apps"],
              apiVersions: ["v1"],
              operations: ["CREATE"],
              resources: ["deployments"],
            }],
          },
          validations: [{ expression: "object.spec.replicas <= 5", message: "too many" }],
        },
      },
    },
    {
      path: "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
      body: {
        metadata: { name: `plc-${ns}` },
        spec: {
          type: "Limited",
          limited: {
            nominalConcurrencyShares: 5,
            lendablePercent: 0,
            limitResponse: {
              type: "Queue",
              queuing: { queues: 8, handSize: 4, queueLengthLimit: 20 },
            },
          },
        },
      },
    },
    {
      path: "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
      body: {
        metadata: { name: `fs-${ns}` },
        spec: {
          priorityLevelConfiguration: { name: `plc-${ns}` },
          matchingPrecedence: 5000,
          distinguisherMethod: { type: "ByUser" },
          rules: [{
            subjects: [{ kind: "Group", group: { name: "parity" } }],
            resourceRules: [{
              verbs: ["*"],
              apiGroups: ["*"],
              resources: ["*"],
              namespaces: ["*"],
            }],
          }],
        },
      },
    },
    {
      path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      body: {
        metadata: { name: `crb-${ns}` },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `cr-${ns}` },
        subjects: [{ kind: "User", name: "someone", apiGroup: "rbac.authorization.k8s.io" }],
      },
    },
    {
      path: "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
      body: {
        metadata: { name: `mwc-${ns}` },
        webhooks: [{
          name: "m.example.com",
          clientConfig: { service: { namespace: ns, name: "svc", path: "/m", port: 443 } },
          admissionReviewVersions: ["v1"],
          sideEffects: "NoneOnDryRun",
          reinvocationPolicy: "IfNeeded",
          objectSelector: { matchExpressions: [{ key: "x", operator: "DoesNotExist" }] },
        }],
      },
    },
    {
      path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
      body: {
        metadata: { name: `vapb-${ns}` },
        spec: { policyName: `vap-${ns}`, validationActions: ["Warn", "Audit"] },
      },
    },
    {
      path: "/apis/storage.k8s.io/v1/csinodes",
      body: {
        metadata: { name: `node-${ns}` },
        spec: {
          drivers: [{
            name: "csi.example.com",
            nodeID: "n1",
            topologyKeys: ["zone"],
            allocatable: { count: 10 },
          }],
        },
      },
    },
    {
      path: "/apis/storage.k8s.io/v1/namespaces/{ns}/csistoragecapacities",
      body: {
        metadata: { name: "cap" },
        storageClassName: `sc-${ns}`,
        capacity: "100Gi",
        maximumVolumeSize: "10Gi",
        nodeTopology: { matchLabels: { zone: "a" } },
      },
    },
    {
      path: "/apis/networking.k8s.io/v1/servicecidrs",
      body: { metadata: { name: `cidr-${ns}` }, spec: { cidrs: ["10.250.0.0/24"] } },
    },
    {
      path: "/apis/resource.k8s.io/v1/deviceclasses",
      body: {
        metadata: { name: `dc-${ns}` },
        spec: { selectors: [{ cel: { expression: 'device.driver == "gpu.example.com"' } }] },
      },
    },
    {
      path: "/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims",
      body: {
        metadata: { name: "claim" },
        spec: {
          devices: {
            requests: [{ name: "gpu", exactly: { deviceClassName: `dc-${ns}`, count: 2 } }],
          },
        },
      },
    },
    {
      path: "/apis/resource.k8s.io/v1/resourceslices",
      body: {
        metadata: { name: `slice-${ns}` },
        spec: {
          driver: "gpu.example.com",
          pool: { name: "p", generation: 1, resourceSliceCount: 1 },
          nodeName: `node-${ns}`,
          devices: [{
            name: "gpu-0",
            attributes: { model: { string: "x1" }, cores: { int: 8 }, fast: { bool: true } },
            capacity: { memory: { value: "16Gi" } },
          }],
        },
      },
    },
    {
      path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      createOnly: true,
      body: {
        spec: {
          user: "someone",
          groups: ["g"],
          extra: { "example.com/x": ["a", "b"] },
          nonResourceAttributes: { path: "/healthz", verb: "get" },
        },
      },
    },
    {
      path: "/apis/authentication.k8s.io/v1/tokenreviews",
      createOnly: true,
      body: { spec: { token: "not-a-real-token", audiences: ["a"] } },
    },
    {
      path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
      createOnly: true,
      body: { spec: { resourceAttributes: { verb: "get", resource: "pods", namespace: ns } } },
    },
    { path: "/apis/authentication.k8s.io/v1/selfsubjectreviews", createOnly: true, body: {} },
  ];
}

async function readJson(client: Client, path: string): Promise<unknown> {
  return await client.requestJson({ path });
}

async function readProtobuf(
  client: Client,
  path: string,
  init?: { method: string; body: unknown },
  compact = false,
): Promise<unknown> {
  const response = await client.request({
    path,
    accept: PROTOBUF,
    ...(init ? { method: init.method, body: init.body } : {}),
  });
  const type = response.headers.get("content-type") ?? "";
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!type.startsWith(PROTOBUF)) throw new Error(`${path}: answered ${type}, not protobuf`);
  if (!compact) return decodeObject(bytes);
  // The compact store's path: items kept as bytes with a header, decoded on read. A list's items
  // have no apiVersion and kind in the JSON; the compact ones carry them (the store needs them).
  const list = decodeCompactList(bytes);
  if (Array.isArray(list.items)) {
    list.items = list.items.map((item) => {
      if (!(item instanceof CompactObject)) return item;
      // As the compact store reads: metadata, spec and status decoded on first access.
      const object = decodeCompactLazy(item, (e) => e);
      delete object.apiVersion;
      delete object.kind;
      return object;
    });
  }
  return list;
}

/** The object of a compact watch event, decoded in full (as the compact store's reads do). */
function fullEvent(frame: Uint8Array): unknown {
  const event = decodeWatchEventCompact(frame);
  const object = event.object as unknown;
  return object instanceof CompactObject
    ? { ...event, object: decodeCompactLazy(object, (e) => e) }
    : event;
}

/** Deep equality with a readable message: the first differing path. */
function same(what: string, json: unknown, proto: unknown): void {
  try {
    deepStrictEqual(proto, json);
  } catch (e) {
    throw new Error(`${what}: protobuf and JSON differ:\n${(e as Error).message.slice(0, 3000)}`);
  }
}

e2eTest("protobuf: every creatable built-in kind reads the same as JSON (get, list, watch)", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("proto");
  await client.requestJson({
    method: "POST",
    path: "/api/v1/namespaces",
    body: { metadata: { name: ns } },
  });

  // A watch in each format, opened before the objects exist, from the namespace's list version.
  const list = await readJson(client, `/api/v1/namespaces/${ns}/configmaps`) as {
    metadata: { resourceVersion: string };
  };
  const rv = list.metadata.resourceVersion;
  const query = `?watch=1&resourceVersion=${rv}&allowWatchBookmarks=false`;

  const created: { path: string; name: string; kind: string }[] = [];
  await t.step("create", async () => {
    const failures: string[] = [];
    for (const f of fixtures(ns, await makeCsr())) {
      const path = f.path.replace("{ns}", ns);
      try {
        if (f.createOnly) {
          const viaJson = await client.requestJson({ method: "POST", path, body: f.body });
          const viaProto = await readProtobuf(client, path, { method: "POST", body: f.body });
          same(`POST ${path}`, viaJson, viaProto);
          continue;
        }
        const object = await client.requestJson<{ kind: string; metadata: { name: string } }>({
          method: "POST",
          path,
          body: f.body,
        });
        created.push({ path, name: object.metadata.name, kind: object.kind });
      } catch (e) {
        failures.push(`POST ${path}: ${(e as Error).message}`);
      }
    }
    assertEquals(failures.join("\n"), "");
  });

  await t.step("get and list", async () => {
    const kinds = new Set<string>();
    const failures: string[] = [];
    for (const { path, name, kind } of created) {
      kinds.add(kind);
      const item = `${path}/${encodeURIComponent(name)}`;
      try {
        same(`GET ${item}`, await readJson(client, item), await readProtobuf(client, item));
        const json = await readJson(client, path);
        same(`GET ${path}`, json, await readProtobuf(client, path));
        same(`GET ${path} (compact)`, json, await readProtobuf(client, path, undefined, true));
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    assertEquals(failures.join("\n"), "");
    assert(kinds.size >= 48, `only ${kinds.size} kinds: ${[...kinds]}`);
    // Cluster-wide lists of the same kinds, with system objects of the control plane in them.
    const system = [
      `/api/v1/namespaces/${ns}`,
      "/api/v1/namespaces",
      "/api/v1/pods",
      "/api/v1/services",
      "/api/v1/namespaces/kube-system/configmaps",
      "/apis/rbac.authorization.k8s.io/v1/clusterroles",
      "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
      "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
      "/apis/scheduling.k8s.io/v1/priorityclasses",
      `/api/v1/namespaces/${ns}/configmaps?labelSelector=absent%3D1`, // an empty list
    ];
    for (const path of system) {
      const json = await readJson(client, path);
      same(`GET ${path}`, json, await readProtobuf(client, path));
      same(`GET ${path} (compact)`, json, await readProtobuf(client, path, undefined, true));
    }
  });

  await t.step("watch", async () => {
    // A MODIFIED and a DELETED event after the ADDED ones.
    const cms = `/api/v1/namespaces/${ns}/configmaps`;
    await client.requestJson({
      method: "PATCH",
      path: `${cms}/empty-config`,
      body: { data: { added: "1" } },
      contentType: "application/merge-patch+json",
    });
    await client.requestJson({ method: "DELETE", path: `${cms}/empty-config` });
    for (const path of [cms, `/api/v1/namespaces/${ns}/pods`]) {
      const n = created.filter((c) => c.path === path).length + (path === cms ? 2 : 0);
      const jsonEvents = await watchJson(client, path + query, n);
      const protoEvents = await watchProtobuf(client, path + query, n);
      same(`watch ${path}`, jsonEvents, protoEvents);
      const compactEvents = await watchProtobuf(client, path + query, n, fullEvent);
      same(`watch ${path} (compact)`, jsonEvents, compactEvents);
    }
  });

  await t.step("through the client: get, list, watch and Reflector syncs agree", async () => {
    await using pb = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }), {
      wireFormat: "protobuf",
    });
    const apis: Api<KubeObject>[] = [
      Api.v1Pod().within(ns),
      Api.v1ConfigMap().within(ns),
      Api.v1Service().within(ns),
      Api.appsV1Deployment().within(ns),
      Api.batchV1Job().within(ns),
      Api.coordinationV1Lease().within(ns),
      Api.v1Namespace(),
    ] as Api<KubeObject>[];
    for (const api of apis) {
      const viaJson = await client.list(api);
      const viaProto = await pb.list(api);
      same(`client.list ${api.collectionPath()}`, viaJson, viaProto);
      const name = viaJson.items[0].metadata!.name!;
      same(`client.get ${name}`, await client.get(api, name), await pb.get(api, name));
      for (const initialSync of ["watchList", "list"] as const) {
        const maps = [];
        for (const [c, store] of [[client], [pb], [pb, "compact"]] as const) {
          const reflector = new Reflector(c, api, { initialSync, store });
          const controller = new AbortController();
          const running = reflector.run({ signal: controller.signal });
          await reflector.ready;
          maps.push(new Map(reflector.read()));
          controller.abort();
          await running;
        }
        same(`Reflector ${initialSync} ${api.collectionPath()}`, maps[0], maps[1]);
        same(`Reflector ${initialSync} compact ${api.collectionPath()}`, maps[0], maps[2]);
      }
    }
    // client.watch from the namespace's first version: the same events as over JSON.
    const pods = Api.v1Pod().within(ns);
    const collect = async (c: Client) => {
      const out = [];
      for await (const e of c.watch(pods, { resourceVersion: rv, timeoutSeconds: 30 })) {
        out.push(e);
        if (out.length === created.filter((x) => x.kind === "Pod").length) break;
      }
      return out;
    };
    same("client.watch pods", await collect(client), await collect(pb));
  });

  await t.step("errors are protobuf Status objects", async () => {
    const path = `/api/v1/namespaces/${ns}/pods/absent`;
    const http = Deno.createHttpClient({ caCerts: [cp.caPem] });
    const response = await fetch(new URL(path, cp.server), {
      client: http,
      headers: { Authorization: `Bearer ${cp.token}`, Accept: PROTOBUF },
    });
    http.close();
    assertEquals(response.status, 404);
    assertEquals(response.headers.get("content-type"), PROTOBUF);
    const status = decodeObject(new Uint8Array(await response.arrayBuffer()));
    assertEquals(status.kind, "Status");
    assertEquals(status.code, 404);
    assertEquals(status.reason, "NotFound");
  });
});

async function watchJson(client: Client, path: string, n: number): Promise<unknown[]> {
  const response = await client.request({ path: path + "&timeoutSeconds=30" });
  const events: unknown[] = [];
  let carry = "";
  const decoder = new TextDecoder();
  const reader = response.body!.getReader();
  while (events.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    const lines = (carry + decoder.decode(value, { stream: true })).split("\n");
    carry = lines.pop()!;
    for (const line of lines) if (line.trim()) events.push(JSON.parse(line));
  }
  await reader.cancel();
  assertEquals(events.length, n);
  return events;
}

async function watchProtobuf(
  client: Client,
  path: string,
  n: number,
  decode: (frame: Uint8Array) => unknown = decodeWatchEvent,
): Promise<unknown[]> {
  const response = await client.request({ path: path + "&timeoutSeconds=30", accept: PROTOBUF });
  assertEquals(response.headers.get("content-type"), `${PROTOBUF};stream=watch`);
  const frames = new FrameDecoder();
  const out: Uint8Array[] = [];
  const events: unknown[] = [];
  const reader = response.body!.getReader();
  while (events.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    // A frame is valid until the next push (it may live in the decoder's reused buffer).
    frames.push(value, out);
    for (const frame of out) events.push(decode(frame));
    out.length = 0;
  }
  await reader.cancel();
  assertEquals(events.length, n);
  return events;
}
