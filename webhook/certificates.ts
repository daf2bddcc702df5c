/**
 * The webhook server's certificates: read from files (cert-manager, a mounted Secret) and reloaded
 * when they change, or managed by the operator itself (a CA and a serving certificate made with
 * WebCrypto and PKI.js, kept in a Secret that every replica shares, rotated before expiry with a
 * time when both the old and the new CA are trusted).
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { getLogger } from "@logtape/logtape";
import { Api } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../errors.ts";
import { runtime } from "../_platform/mod.ts";
import type { Secret } from "../generated/core_v1.ts";

const log = getLogger(["kube", "webhook"]);

/** A serving certificate chain and its private key, in PEM. */
export interface CertificatePair {
  /** The certificate (chain) in PEM. */
  cert: string;
  /** The private key in PEM (PKCS#8). */
  key: string;
}

/** Where a webhook server gets its certificate from. */
export interface CertificateSource {
  /**
   * The pair to serve now, once loaded.
   *
   * @returns The pair, or `undefined` before the first load.
   */
  current(): CertificatePair | undefined;
  /**
   * The CA bundle the API server must trust (PEM), when the source knows it.
   *
   * @returns The bundle, or `undefined`.
   */
  caBundle(): string | undefined;
  /**
   * Keeps the certificate current (reloads, rotates) until `signal` aborts.
   *
   * @param signal Stops it.
   * @param onChange Called with each new pair and bundle; it may reject (the pair is unusable),
   *   which is logged and retried later.
   */
  run(
    signal: AbortSignal,
    onChange: (pair: CertificatePair, caBundle: string | undefined) => Promise<void>,
  ): Promise<void>;
  /**
   * Whether a usable certificate is loaded.
   *
   * @returns `true`, or why not.
   */
  ready(): true | string;
}

// ---------------------------------------------------------------------------------------------
// Making and reading certificates

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;

function pem(der: ArrayBuffer, label: string): string {
  const bytes = new Uint8Array(der);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const lines = btoa(binary).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function pemBlocks(text: string, label: string): Uint8Array<ArrayBuffer>[] {
  const out: Uint8Array<ArrayBuffer>[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`, "g");
  for (const m of text.matchAll(re)) {
    const binary = atob(m[1].replace(/\s+/g, ""));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    out.push(bytes);
  }
  return out;
}

function distinguishedName(commonName: string): pkijs.RelativeDistinguishedNames {
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: [
      new pkijs.AttributeTypeAndValue({
        type: "2.5.4.3",
        value: new asn1js.Utf8String({ value: commonName }),
      }),
    ],
  });
}

function ipBytes(ip: string): ArrayBuffer {
  if (ip.includes(":")) {
    // IPv6, with :: expanded.
    const [head, tail = ""] = ip.split("::");
    const h = head ? head.split(":") : [];
    const t = tail ? tail.split(":") : [];
    const groups = ip.includes("::")
      ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t]
      : h;
    const out = new Uint8Array(16);
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      out[i * 2] = v >> 8;
      out[i * 2 + 1] = v & 0xff;
    });
    return out.buffer;
  }
  return new Uint8Array(ip.split(".").map(Number)).buffer;
}

async function certificate(options: {
  subject: string;
  issuer: string;
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}): Promise<string> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  const serial = crypto.getRandomValues(new Uint8Array(16));
  // Positive and minimally encoded (Go refuses a DER integer with a redundant leading zero byte,
  // "x509: malformed serial number"): the top byte is 0x40–0x7f.
  serial[0] = (serial[0] & 0x3f) | 0x40;
  cert.serialNumber = new asn1js.Integer({ valueHex: serial.buffer });
  cert.issuer = distinguishedName(options.issuer);
  cert.subject = distinguishedName(options.subject);
  cert.notBefore.value = options.notBefore;
  cert.notAfter.value = options.notAfter;
  // keyUsage bits: digitalSignature (0) for a server; keyCertSign (5) and cRLSign (6) for a CA.
  const usage = new asn1js.BitString({
    valueHex: new Uint8Array([options.ca ? 0x06 : 0x80]).buffer,
    unusedBits: options.ca ? 1 : 7,
  });
  cert.extensions = [
    new pkijs.Extension({
      extnID: "2.5.29.19",
      critical: true,
      extnValue: new pkijs.BasicConstraints({ cA: options.ca }).toSchema().toBER(false),
    }),
    new pkijs.Extension({ extnID: "2.5.29.15", critical: true, extnValue: usage.toBER(false) }),
  ];
  if (!options.ca) {
    cert.extensions.push(
      new pkijs.Extension({
        extnID: "2.5.29.37",
        critical: false,
        extnValue: new pkijs.ExtKeyUsage({ keyPurposes: ["1.3.6.1.5.5.7.3.1"] }).toSchema().toBER(
          false,
        ),
      }),
    );
    const names = [
      ...(options.dnsNames ?? []).map((value) => new pkijs.GeneralName({ type: 2, value })),
      ...(options.ipAddresses ?? []).map((ip) =>
        new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(ip) }) })
      ),
    ];
    cert.extensions.push(
      new pkijs.Extension({
        extnID: "2.5.29.17",
        critical: false,
        extnValue: new pkijs.GeneralNames({ names }).toSchema().toBER(false),
      }),
    );
  }
  await cert.subjectPublicKeyInfo.importKey(options.publicKey);
  await cert.sign(options.signingKey, "SHA-256");
  return pem(cert.toSchema().toBER(false), "CERTIFICATE");
}

/** A freshly made CA and the serving certificate it signed. */
export interface GeneratedCertificates extends CertificatePair {
  /** The CA certificate (PEM); its private key is discarded once it has signed. */
  caCert: string;
}

/**
 * Makes a new CA (ECDSA P-256) and a serving certificate for the given names, signed by it. The
 * CA's private key is thrown away after signing: a rotation makes a new CA.
 *
 * @param options The names the API server will connect to (the Service's DNS names, or
 *   `127.0.0.1`), the validity, and the start time (default now).
 * @returns The CA certificate, the serving certificate and its key, in PEM.
 * @example
 * ```ts
 * import { generateCertificates } from "@denokube/kube/webhook";
 * const { caCert, cert, key } = await generateCertificates({
 *   ipAddresses: ["127.0.0.1"],
 *   validityMs: 24 * 3600_000,
 * });
 * ```
 */
export async function generateCertificates(options: {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validityMs: number;
  now?: number;
  commonName?: string;
}): Promise<GeneratedCertificates> {
  if (!options.dnsNames?.length && !options.ipAddresses?.length) {
    throw new TypeError(
      "generateCertificates: give the serving certificate at least one DNS name or IP address",
    );
  }
  for (const ip of options.ipAddresses ?? []) {
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(ip) && !/^[0-9a-f:]+$/i.test(ip)) {
      throw new TypeError(`generateCertificates: ${JSON.stringify(ip)} is not an IP address`);
    }
  }
  const now = options.now ?? Date.now();
  // Backdated a little: clocks of the API server and the operator differ.
  const notBefore = new Date(now - 5 * 60_000);
  const notAfter = new Date(now + options.validityMs);
  const name = options.commonName ?? options.dnsNames?.[0] ?? options.ipAddresses![0];
  const caKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const caName = `kube-webhook-ca@${Math.floor(now / 1000)}`;
  const caCert = await certificate({
    subject: caName,
    issuer: caName,
    publicKey: caKeys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore,
    notAfter: new Date(notAfter.getTime() + 60_000),
    ca: true,
  });
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const cert = await certificate({
    subject: name,
    issuer: caName,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore,
    notAfter,
    ca: false,
    dnsNames: options.dnsNames,
    ipAddresses: options.ipAddresses,
  });
  const key = pem(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
  return { caCert, cert, key };
}

/** What a certificate says about its validity. */
export interface CertificateInfo {
  /** The subject's common name. */
  subject: string;
  /** Start of validity, ms since the epoch. */
  notBefore: number;
  /** End of validity, ms since the epoch. */
  notAfter: number;
}

/**
 * Reads the first certificate of a PEM text.
 *
 * @param text PEM.
 * @returns Subject and validity.
 * @throws {TypeError} When the text holds no parseable certificate.
 * @example
 * ```ts ignore
 * const { notAfter } = certificateInfo(pair.cert);
 * ```
 */
export function certificateInfo(text: string): CertificateInfo {
  const [der] = pemBlocks(text, "CERTIFICATE");
  if (!der) throw new TypeError("no PEM CERTIFICATE block found");
  let cert: pkijs.Certificate;
  try {
    cert = pkijs.Certificate.fromBER(der);
  } catch (e) {
    throw new TypeError(
      `the CERTIFICATE block is not an X.509 certificate: ${(e as Error).message}`,
    );
  }
  const cn = cert.subject.typesAndValues.find((t) => t.type === "2.5.4.3");
  return {
    subject: cn ? String(cn.value.valueBlock.value) : "",
    notBefore: cert.notBefore.value.getTime(),
    notAfter: cert.notAfter.value.getTime(),
  };
}

/**
 * Checks that the private key belongs to the certificate (any key format: PKCS#8, PKCS#1, SEC 1).
 *
 * @param pair The pair.
 * @returns Why not, or `undefined` when it does.
 */
export function keyMismatch(pair: CertificatePair): string | undefined {
  try {
    const cert = new X509Certificate(pair.cert);
    return cert.checkPrivateKey(createPrivateKey(pair.key))
      ? undefined
      : "the private key does not belong to the certificate";
  } catch (e) {
    return `the certificate or key cannot be read: ${(e as Error).message}`;
  }
}

/** Checks a pair's certificate for being readable and valid now; returns why not, or `undefined`. */
function problemOf(pair: CertificatePair, now: number): string | undefined {
  let info: CertificateInfo;
  try {
    info = certificateInfo(pair.cert);
  } catch (e) {
    return (e as Error).message;
  }
  if (pemBlocks(pair.key, "[A-Z ]*PRIVATE KEY").length === 0) {
    return "no PEM PRIVATE KEY block found";
  }
  const mismatch = keyMismatch(pair);
  if (mismatch) return mismatch;
  if (info.notAfter <= now) {
    return `the certificate expired at ${new Date(info.notAfter).toISOString()}`;
  }
  if (info.notBefore > now) {
    return `the certificate is not valid before ${new Date(info.notBefore).toISOString()}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// From files

/** Options of {@linkcode FileCertificates}. */
export interface FileCertificatesOptions {
  /** The certificate file, e.g. `/tmp/k8s-webhook-server/serving-certs/tls.crt`. */
  certFile: string;
  /** The key file, e.g. `…/tls.key`. */
  keyFile: string;
  /** A CA bundle file (e.g. `ca.crt`) whose text {@linkcode CertificateSource.caBundle} answers. */
  caFile?: string;
  /** How often the files are read again. Default 10 000 ms. */
  pollIntervalMs?: number;
  /** Source of time. Default {@linkcode systemClock}. */
  clock?: Clock;
}

/**
 * A certificate from files (cert-manager, a mounted Secret), read again every poll interval and
 * served anew when it changed: a Secret's atomic symlink swap and a plain rewrite are both seen. A
 * missing, unreadable, invalid or expired pair is logged and keeps the previous one in use (or
 * keeps `/readyz` red with the reason, before the first).
 *
 * @example
 * ```ts ignore
 * const certs = new FileCertificates({ certFile: "/certs/tls.crt", keyFile: "/certs/tls.key" });
 * ```
 */
export class FileCertificates implements CertificateSource {
  readonly #options: FileCertificatesOptions;
  readonly #clock: Clock;
  #pair: CertificatePair | undefined;
  #bundle: string | undefined;
  #problem = "the certificate files have not been read yet";

  /**
   * Creates the source; nothing is read before {@linkcode FileCertificates.prototype.load} or
   * {@linkcode FileCertificates.prototype.run}.
   *
   * @param options The files and the poll interval.
   */
  constructor(options: FileCertificatesOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * The pair in use.
   *
   * @returns The pair, or `undefined` before a good one was read.
   */
  current(): CertificatePair | undefined {
    return this.#pair;
  }

  /**
   * The CA file's text, if one was named and read.
   *
   * @returns The bundle.
   */
  caBundle(): string | undefined {
    return this.#bundle;
  }

  /**
   * Whether a good pair is loaded.
   *
   * @returns `true`, or why not (naming the file).
   */
  ready(): true | string {
    return this.#pair ? true : this.#problem;
  }

  /**
   * Reads the files once.
   *
   * @returns The pair if it is new and good, else `undefined` (the reason is logged and kept
   *   for {@linkcode FileCertificates.prototype.ready}).
   */
  async load(): Promise<CertificatePair | undefined> {
    const { certFile, keyFile, caFile } = this.#options;
    let cert: string, key: string, bundle: string | undefined;
    try {
      [cert, key, bundle] = await Promise.all([
        runtime().readTextFile(certFile),
        runtime().readTextFile(keyFile),
        caFile ? runtime().readTextFile(caFile) : Promise.resolve(undefined),
      ]);
    } catch (e) {
      const missing = runtime().isNotFound(e);
      this.#fail(
        `${missing ? "missing" : "unreadable"} certificate file (${certFile}, ${keyFile}${
          caFile ? `, ${caFile}` : ""
        })${missing ? "" : `: ${(e as Error).message}`}`,
      );
      return undefined;
    }
    const problem = problemOf({ cert, key }, this.#clock.now());
    if (problem) {
      this.#fail(`${certFile}: ${problem}`);
      return undefined;
    }
    this.#bundle = bundle;
    if (this.#pair?.cert === cert && this.#pair.key === key) return undefined;
    return { cert, key };
  }

  #fail(problem: string): void {
    if (problem !== this.#problem) {
      log.error("Webhook certificate not loaded: {problem}", { problem });
    }
    this.#problem = problem;
  }

  /**
   * Reads the files now and every poll interval until `signal` aborts; calls `onChange` with each
   * new good pair.
   *
   * @param signal Stops it.
   * @param onChange Receives each new pair; a rejection (e.g. the key does not match) is logged
   *   and the old pair stays.
   */
  async run(
    signal: AbortSignal,
    onChange: (pair: CertificatePair, caBundle: string | undefined) => Promise<void>,
  ): Promise<void> {
    while (!signal.aborted) {
      const next = await this.load();
      if (next) {
        try {
          await onChange(next, this.#bundle);
          this.#pair = next;
          log.info("Serving the webhook certificate from {file} ({subject}, until {until})", {
            file: this.#options.certFile,
            subject: certificateInfo(next.cert).subject,
            until: new Date(certificateInfo(next.cert).notAfter).toISOString(),
          });
        } catch (e) {
          this.#fail(`${this.#options.certFile}: the pair is unusable: ${(e as Error).message}`);
        }
      }
      try {
        await this.#clock.sleep(this.#options.pollIntervalMs ?? 10_000, signal);
      } catch {
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Self-managed, in a Secret

/** Options of {@linkcode SelfManagedCertificates}. */
export interface SelfManagedCertificatesOptions {
  /** The client that reads and writes the Secret. */
  client: Client;
  /** The Secret's namespace (the operator's). */
  namespace: string;
  /** The Secret's name. Default `kube-webhook-certs`. */
  secretName?: string;
  /** DNS names of the serving certificate, e.g. `foo-webhook.ops.svc`. */
  dnsNames?: string[];
  /** IP addresses of the serving certificate, e.g. `127.0.0.1` outside a cluster. */
  ipAddresses?: string[];
  /** How long a certificate is valid. Default 365 days. */
  validityMs?: number;
  /**
   * Rotate when this fraction of the validity has passed. Default 2/3 (as kubelet's serving
   * certificates), so a year-long one is replaced after eight months.
   */
  rotateAfter?: number;
  /**
   * How long the new CA is trusted (in the bundle) before any replica serves the new certificate,
   * and how long the old CA stays trusted after. Must be longer than the poll interval (every
   * replica must have seen the step). Default 5 minutes.
   */
  overlapMs?: number;
  /** How often each replica reads the Secret. Default 60 000 ms. */
  pollIntervalMs?: number;
  /**
   * Called with the new CA bundle before it is needed (the webhook configurations and CRDs get
   * it; {@linkcode WebhookServer} wires this to the registration).
   */
  onBundle?: (caBundle: string) => Promise<void>;
  /** Source of time. Default {@linkcode systemClock}. */
  clock?: Clock;
}

/** The Secret's keys. */
const KEYS = {
  bundle: "ca.crt",
  cert: "tls.crt",
  key: "tls.key",
  nextCert: "next.crt",
  nextKey: "next.key",
} as const;
/** Annotations that time the rotation's steps (RFC 3339). */
const SERVE_NEXT_AT = "webhook.denokube.dev/serve-next-at";
const DROP_OLD_AT = "webhook.denokube.dev/drop-old-ca-at";

const SECRETS = Api.v1Secret();

function decode(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const binary = atob(value);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

function encode(text: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The state the Secret holds. */
interface State {
  bundle: string;
  cert: string;
  key: string;
  next?: GeneratedCertificates;
  serveNextAt?: number;
  dropOldAt?: number;
}

/** The CA certificate(s) of a bundle, one PEM each. */
function certificatesOf(bundle: string): string[] {
  return pemBlocks(bundle, "CERTIFICATE").map((der) => pem(der.buffer, "CERTIFICATE"));
}

/**
 * Certificates the operator makes and rotates itself, kept in a Secret (`ca.crt`, `tls.crt`,
 * `tls.key`, `type: kubernetes.io/tls`) so that every replica serves the same pair. Every replica
 * reads the Secret every poll interval; whichever first sees a step due takes it, with the
 * Secret's resourceVersion guarding against two taking the same one:
 *
 * 1. no Secret (or an unusable one): make a CA and a serving certificate;
 * 2. `rotateAfter` of the validity passed: make a new CA and certificate, trust both CAs
 *    (`ca.crt` holds both; the bundle goes to the configurations at once), keep serving the old
 *    one until `serve-next-at` (now + overlap);
 * 3. then serve the new one; the old CA stays trusted until `drop-old-ca-at` (now + overlap);
 * 4. then trust only the new CA.
 *
 * So no API server call meets a certificate it does not trust, on any replica. CA private keys are
 * never stored: each rotation makes a new CA.
 *
 * @example
 * ```ts ignore
 * const certs = new SelfManagedCertificates({
 *   client, namespace: "ops", dnsNames: ["foo-webhook.ops.svc"],
 * });
 * ```
 */
export class SelfManagedCertificates implements CertificateSource {
  readonly #o:
    & Required<Omit<SelfManagedCertificatesOptions, "onBundle" | "dnsNames" | "ipAddresses">>
    & SelfManagedCertificatesOptions;
  #state: State | undefined;
  #served: CertificatePair | undefined;
  #problem = "the certificate Secret has not been read yet";
  #onBundle: ((bundle: string) => Promise<void>) | undefined;
  #appliedBundle: string | undefined;
  #rotateNow = false;

  /**
   * Creates the source; nothing is read or written before `run`.
   *
   * @param options Where the Secret lives, the names, validity and rotation timing.
   * @throws {TypeError} On inconsistent timing (an overlap not longer than the poll interval, a
   *   rotation so late that the overlaps do not fit).
   */
  constructor(options: SelfManagedCertificatesOptions) {
    this.#o = {
      secretName: "kube-webhook-certs",
      validityMs: 365 * 24 * 3600_000,
      rotateAfter: 2 / 3,
      overlapMs: 5 * 60_000,
      pollIntervalMs: 60_000,
      clock: systemClock,
      ...options,
    };
    this.#onBundle = options.onBundle;
    const o = this.#o;
    if (!o.dnsNames?.length && !o.ipAddresses?.length) {
      throw new TypeError(
        "SelfManagedCertificates: give dnsNames or ipAddresses for the certificate",
      );
    }
    if (o.overlapMs <= o.pollIntervalMs) {
      throw new TypeError(
        `SelfManagedCertificates: overlapMs (${o.overlapMs}) must be longer than pollIntervalMs (${o.pollIntervalMs}), so that every replica sees each rotation step`,
      );
    }
    if (!(o.rotateAfter > 0 && o.rotateAfter < 1)) {
      throw new TypeError(
        `SelfManagedCertificates: rotateAfter must be between 0 and 1, got ${o.rotateAfter}`,
      );
    }
    if (o.validityMs * (1 - o.rotateAfter) <= 2 * o.overlapMs + o.pollIntervalMs) {
      throw new TypeError(
        "SelfManagedCertificates: validityMs × (1 − rotateAfter) must leave room for two overlaps and a poll interval before expiry",
      );
    }
  }

  /**
   * Starts a rotation at this replica's next round, whatever the certificate's age (e.g. after a
   * suspected key leak). The steps and overlaps are those of a scheduled rotation.
   */
  rotateNow(): void {
    this.#rotateNow = true;
  }

  /**
   * Sets the function that carries a new CA bundle to the configurations (the
   * {@linkcode WebhookServer} sets it when it registers).
   *
   * @param onBundle Receives each new bundle.
   */
  setBundleListener(onBundle: (caBundle: string) => Promise<void>): void {
    this.#onBundle = onBundle;
  }

  /**
   * The pair this replica serves.
   *
   * @returns The pair, or `undefined` before the Secret was read.
   */
  current(): CertificatePair | undefined {
    return this.#served;
  }

  /**
   * The CA bundle (one or two CAs).
   *
   * @returns The bundle, or `undefined` before the Secret was read.
   */
  caBundle(): string | undefined {
    return this.#state?.bundle;
  }

  /**
   * Whether a pair is served.
   *
   * @returns `true`, or why not.
   */
  ready(): true | string {
    return this.#served ? true : this.#problem;
  }

  /**
   * One round: read the Secret, take the step that is due, serve what it says. Exposed for tests
   * (with a `VirtualClock`); {@linkcode SelfManagedCertificates.prototype.run} calls it every
   * poll interval.
   *
   * @param onChange Receives a new pair to serve.
   */
  async sync(
    onChange: (pair: CertificatePair, caBundle: string | undefined) => Promise<void>,
  ): Promise<void> {
    const o = this.#o;
    for (let attempt = 0; attempt < 5; attempt++) {
      let secret: Secret | undefined;
      try {
        secret = await o.client.get(SECRETS, o.secretName, { namespace: o.namespace });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      const now = o.clock.now();
      const found = secret ? this.#read(secret, now) : undefined;
      const next = await this.#step(found, now);
      if (!next) {
        await this.#adopt(found!, now, onChange);
        return;
      }
      try {
        const written = await this.#write(secret, next);
        await this.#adopt(this.#read(written, now)!, now, onChange);
        return;
      } catch (e) {
        // Another replica took the step first: read what it wrote.
        if (isConflict(e) || isAlreadyExists(e)) continue;
        throw e;
      }
    }
  }

  #read(secret: Secret, now: number): State | undefined {
    const d = secret.data ?? {};
    const a = secret.metadata?.annotations ?? {};
    const bundle = decode(d[KEYS.bundle]);
    const cert = decode(d[KEYS.cert]);
    const key = decode(d[KEYS.key]);
    if (!bundle || !cert || !key) return undefined;
    const problem = problemOf({ cert, key }, now);
    if (problem) {
      log.warning(
        "The webhook certificate Secret {name} holds an unusable certificate: {problem}",
        {
          name: `${this.#o.namespace}/${this.#o.secretName}`,
          problem,
        },
      );
      return undefined;
    }
    const state: State = { bundle, cert, key };
    const nextCert = decode(d[KEYS.nextCert]);
    const nextKey = decode(d[KEYS.nextKey]);
    if (nextCert && nextKey && !problemOf({ cert: nextCert, key: nextKey }, now)) {
      state.next = { cert: nextCert, key: nextKey, caCert: "" };
      state.serveNextAt = Date.parse(a[SERVE_NEXT_AT] ?? "") || now;
    }
    const drop = Date.parse(a[DROP_OLD_AT] ?? "");
    if (drop) state.dropOldAt = drop;
    return state;
  }

  /** The state to write, or `undefined` when nothing is due. */
  async #step(state: State | undefined, now: number): Promise<State | undefined> {
    const o = this.#o;
    const make = () =>
      generateCertificates({
        dnsNames: o.dnsNames,
        ipAddresses: o.ipAddresses,
        validityMs: o.validityMs,
        now,
      });
    if (!state) {
      const g = await make();
      log.info("Created the webhook CA and serving certificate in Secret {name}", {
        name: `${o.namespace}/${o.secretName}`,
      });
      return { bundle: g.caCert, cert: g.cert, key: g.key };
    }
    if (state.next) {
      if (now < state.serveNextAt!) return undefined;
      log.info("Webhook certificate rotation: serving the new certificate (both CAs trusted)");
      return {
        bundle: state.bundle,
        cert: state.next.cert,
        key: state.next.key,
        dropOldAt: now + o.overlapMs,
      };
    }
    if (state.dropOldAt !== undefined) {
      if (now < state.dropOldAt) return undefined;
      const cas = certificatesOf(state.bundle);
      log.info("Webhook certificate rotation: the old CA is no longer trusted");
      return { bundle: cas[cas.length - 1], cert: state.cert, key: state.key };
    }
    const info = certificateInfo(state.cert);
    const rotateAt = info.notBefore + (info.notAfter - info.notBefore) * o.rotateAfter;
    if (now < rotateAt && !this.#rotateNow) return undefined;
    this.#rotateNow = false;
    const g = await make();
    log.info("Webhook certificate rotation: a new CA is trusted; serving it from {at}", {
      at: new Date(now + o.overlapMs).toISOString(),
    });
    return {
      bundle: `${certificatesOf(state.bundle).at(-1)}${g.caCert}`,
      cert: state.cert,
      key: state.key,
      next: g,
      serveNextAt: now + o.overlapMs,
    };
  }

  async #write(existing: Secret | undefined, state: State): Promise<Secret> {
    const o = this.#o;
    const data: Record<string, string> = {
      [KEYS.bundle]: encode(state.bundle),
      [KEYS.cert]: encode(state.cert),
      [KEYS.key]: encode(state.key),
    };
    if (state.next) {
      data[KEYS.nextCert] = encode(state.next.cert);
      data[KEYS.nextKey] = encode(state.next.key);
    }
    const annotations: Record<string, string> = {
      ...(existing?.metadata?.annotations ?? {}),
    };
    delete annotations[SERVE_NEXT_AT];
    delete annotations[DROP_OLD_AT];
    if (state.serveNextAt !== undefined) {
      annotations[SERVE_NEXT_AT] = new Date(state.serveNextAt).toISOString();
    }
    if (state.dropOldAt !== undefined) {
      annotations[DROP_OLD_AT] = new Date(state.dropOldAt).toISOString();
    }
    const secret: Secret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        ...(existing?.metadata ?? {}),
        name: o.secretName,
        namespace: o.namespace,
        annotations,
      },
      type: "kubernetes.io/tls",
      data,
    };
    if (!existing) return await o.client.create(SECRETS, secret);
    // Guarded by the resourceVersion read: a concurrent writer makes this a 409 Conflict.
    return await o.client.replace(SECRETS, secret);
  }

  async #adopt(
    state: State,
    _now: number,
    onChange: (pair: CertificatePair, caBundle: string | undefined) => Promise<void>,
  ): Promise<void> {
    this.#state = state;
    const serve = async () => {
      if (this.#served?.cert === state.cert) return;
      const pair = { cert: state.cert, key: state.key };
      await onChange(pair, state.bundle);
      this.#served = pair;
    };
    // The first time, serve at once (a failing registration must not keep the server down);
    // afterwards the bundle goes out before a certificate it must vouch for.
    if (!this.#served) await serve();
    if (state.bundle !== this.#appliedBundle && this.#onBundle) {
      await this.#onBundle(state.bundle);
      this.#appliedBundle = state.bundle;
    }
    await serve();
  }

  /**
   * Reads the Secret and takes due steps now and every poll interval until `signal` aborts. A
   * failed round (the API server unreachable, no permission) is logged and retried at the next
   * interval; the pair in use stays.
   *
   * @param signal Stops it.
   * @param onChange Receives each new pair to serve.
   */
  async run(
    signal: AbortSignal,
    onChange: (pair: CertificatePair, caBundle: string | undefined) => Promise<void>,
  ): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.sync(onChange);
      } catch (e) {
        this.#problem =
          `reading or writing the certificate Secret ${this.#o.namespace}/${this.#o.secretName} failed: ${
            (e as Error).message
          }`;
        log.error("Webhook certificates: {problem}", { problem: this.#problem });
      }
      try {
        await this.#o.clock.sleep(this.#o.pollIntervalMs, signal);
      } catch {
        return;
      }
    }
  }
}
