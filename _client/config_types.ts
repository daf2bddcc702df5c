// Internal leaf module (imports nothing): the shapes a resolved configuration is made of, shared
// by `config.ts` (which re-exports them publicly), the kubeconfig loader (`_client/kubeconfig.ts`) and
// the exec credential plugin runner (`_client/exec_credential.ts`), so that those two need not import
// `config.ts` back.

/** How to reach the API server: URL, TLS trust, proxy. Never holds credentials. */
export interface ClusterConnection {
  /** The API server URL without a trailing slash, e.g. `https://127.0.0.1:6443`. */
  server: string;
  /** PEM bundle of certificate authorities to trust, in addition to the system roots. */
  certificateAuthority?: string;
  /** `insecure-skip-tls-verify` from the kubeconfig. */
  insecureSkipTlsVerify: boolean;
  /** `proxy-url` from the kubeconfig (http, https or socks5). */
  proxyUrl?: string;
  /**
   * `tls-server-name` from the kubeconfig when it differs from the server's host: the name the
   * server's certificate is verified against (Node and Bun 1.4+; Deno refuses such a kubeconfig).
   */
  tlsServerName?: string;
  /** `disable-compression` from the kubeconfig. */
  disableCompression: boolean;
}

/** Impersonation settings (`as`, `as-uid`, `as-groups`, `as-user-extra`). */
export interface Impersonation {
  /** User to act as (`Impersonate-User`). */
  user?: string;
  /** UID to act as (`Impersonate-Uid`). */
  uid?: string;
  /** Groups to act as (`Impersonate-Group`, repeated). */
  groups?: string[];
  /** Extra fields (`Impersonate-Extra-<key>`). */
  extra?: Record<string, string[]>;
}

/** Credentials to present on a request. */
export interface Credentials {
  /** A bearer token for the `Authorization` header. */
  token?: string;
  /** HTTP basic authentication. */
  basic?: { username: string; password: string };
  /** A client certificate and key in PEM format, for mutual TLS. */
  clientCertificate?: { cert: string; key: string };
}
