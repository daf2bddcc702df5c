// The real CRDs crdgen is proven on, from pinned Go modules (the module zip holds the CRD YAML
// and the projects' own examples): `go mod download -json <module>@<version>` puts them into the
// Go module cache and answers its directory. Nothing of them is committed here.

import { e2eRequired, haveGo } from "./build.ts";

/** The pinned projects. */
export const CRD_MODULES = {
  gatewayApi: { module: "sigs.k8s.io/gateway-api", version: "v1.6.3" },
  certManager: { module: "github.com/cert-manager/cert-manager", version: "v1.21.2" },
} as const;

/** Where the CRDs and examples are inside each module. */
export interface CrdModuleDirs {
  /** Gateway API's `config/crd/standard`. */
  gatewayCrds: string;
  /** Gateway API's `examples/standard`. */
  gatewayExamples: string;
  /** cert-manager's `deploy/crds`. */
  certManagerCrds: string;
}

/** Why the real-CRD tests cannot run here (no Go), or undefined. */
export async function crdModulesSkipReason(): Promise<string | undefined> {
  if (await haveGo()) return undefined;
  const reason = "Go is not installed, so the pinned Gateway API and cert-manager modules " +
    "(their CRDs and examples) cannot be downloaded";
  if (e2eRequired()) throw new Error(`real-CRD tests required but: ${reason}`);
  return reason;
}

async function moduleDir(module: string, version: string): Promise<string> {
  const out = await new Deno.Command("go", {
    args: ["mod", "download", "-json", `${module}@${version}`],
    stdout: "piped",
    stderr: "piped",
    env: { GOFLAGS: "-mod=mod" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  let info: { Dir?: string; Error?: string } = {};
  try {
    info = JSON.parse(text);
  } catch {
    // reported below
  }
  if (!out.success || !info.Dir) {
    throw new Error(
      `go mod download ${module}@${version} failed: ${
        info.Error ?? new TextDecoder().decode(out.stderr).trim()
      } (the Go module proxy must be reachable, or the module in the Go module cache)`,
    );
  }
  return info.Dir;
}

/**
 * Downloads (or finds in the Go module cache) the pinned modules.
 *
 * @returns The directories of their CRDs and examples.
 */
export async function crdModuleDirs(): Promise<CrdModuleDirs> {
  const [gateway, certManager] = await Promise.all([
    moduleDir(CRD_MODULES.gatewayApi.module, CRD_MODULES.gatewayApi.version),
    moduleDir(CRD_MODULES.certManager.module, CRD_MODULES.certManager.version),
  ]);
  return {
    gatewayCrds: `${gateway}/config/crd/standard`,
    gatewayExamples: `${gateway}/examples/standard`,
    certManagerCrds: `${certManager}/deploy/crds`,
  };
}
