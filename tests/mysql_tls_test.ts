/**
 * TLS to MySQL/MariaDB (`db.ssl_*`, `?ssl-mode=` in db.url): what the
 * settings say is checked before any connection, and against a private
 * server that takes TLS only (require_secure_transport), every mode
 * reaches it or is refused saying what to do, and `serve` runs jobs
 * through it.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { cli, CliProcess, waitFor } from "./helpers.ts";
import { privateMariadb, privateMariadbMissing } from "./private_mariadb.ts";
import { ADMIN } from "./http_harness.ts";
import { resolveTarget } from "../src/config/database.ts";
import { defaultSettings, loadConfig, type Settings } from "../src/config/config.ts";
import { ValidationError } from "../src/errors.ts";
import type { MysqlTarget } from "../src/store/target.ts";

const missing = privateMariadbMissing() ?? (openssl() ? null : "openssl is not installed");

function openssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** The target of `url` with `settings` beside it. */
function target(url: string, settings: Partial<Settings> = {}): MysqlTarget {
  return resolveTarget({ ...defaultSettings(), ...settings, "db.url": url }) as MysqlTarget;
}

/** What resolving `url` (with `settings`) is refused with: the field and the message. */
function refusal(url: string, settings: Partial<Settings> = {}): [string, string] {
  const error = assertThrows(() => target(url, settings), ValidationError) as ValidationError;
  return [error.field, error.message];
}

Deno.test("mysql tls: db.url's ssl-* parameters and the db.ssl_* keys resolve to one TLS setting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jm-tls-settings-" });
  try {
    const pem = (label: string, body: string) =>
      `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
    const CA = pem("CERTIFICATE", "CA");
    const ca = `${dir}/ca+bundle.pem`;
    await Deno.writeTextFile(ca, CA);
    await Deno.writeTextFile(`${dir}/client.pem`, pem("CERTIFICATE", "CLIENT"));
    await Deno.writeTextFile(`${dir}/client.key`, pem("PRIVATE KEY", "KEY"));
    await Deno.writeTextFile(`${dir}/locked.key`, pem("ENCRYPTED PRIVATE KEY", "KEY"));
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a certificate");
    const base = "mysql://jobs@db.example:3306/jobs";
    assertEquals(target(base).tls, undefined);
    assertEquals(target(`${base}?ssl-mode=disabled`).tls, undefined);
    // As the mysql client writes them, too: REQUIRED, VERIFY-IDENTITY.
    assertEquals(target(`${base}?ssl-mode=REQUIRED`).tls, {
      mode: "required",
      ca: null,
      cert: null,
      key: null,
    });
    // A CA alone asks for verify_ca, as the mysql client takes it; a + in its path is a +.
    assertEquals(target(`${base}?ssl-ca=${ca}`).tls, {
      mode: "verify_ca",
      ca: CA,
      cert: null,
      key: null,
    });
    assertEquals(target(base, { "db.ssl_ca": ca }).tls?.ca, CA);
    // A URL's ssl-mode=disabled sets the file's TLS files aside, as its password does password_file.
    assertEquals(target(`${base}?ssl-mode=disabled`, { "db.ssl_ca": ca }).tls, undefined);
    // The URL's parameter wins over the key, as the URL's user does.
    assertEquals(
      target(`${base}?ssl-mode=verify-identity`, { "db.ssl_mode": "required" }).tls?.mode,
      "verify_identity",
    );
    assertEquals(
      target(base, {
        "db.ssl_mode": "verify_identity",
        "db.ssl_cert": `${dir}/client.pem`,
        "db.ssl_key": `${dir}/client.key`,
      }).tls,
      {
        mode: "verify_identity",
        ca: null,
        cert: pem("CERTIFICATE", "CLIENT"),
        key: pem("PRIVATE KEY", "KEY"),
      },
    );
    assertEquals(
      [refusal(`${base}?ssl=true`)[0], refusal(`${base}?ssl=true`)[1]],
      [
        "db.url",
        "db.url has parameter 'ssl', which jobsmanager does not know (it knows charset, socket, ssl-mode, ssl-ca, ssl-cert, ssl-key); remove it",
      ],
    );
    assertEquals(refusal(`${base}?ssl-mode=required&ssl-mode=disabled`), [
      "db.url",
      "db.url: parameter 'ssl-mode' is given twice; keep one",
    ]);
    // An address: mysql2 would check no name at all.
    assertEquals(refusal("mysql://jobs@127.0.0.1/jobs?ssl-mode=verify_identity"), [
      "db.url",
      "db.url's ssl-mode: verify_identity checks the server's certificate against the host name, and the host is the address 127.0.0.1; connect by the name the certificate is made out to, or set it to verify_ca (which checks who signed the certificate)",
    ]);
    assertEquals(
      refusal("mysql://jobs@[::1]/jobs", { "db.ssl_mode": "verify_identity" })[0],
      "db.ssl_mode",
    );
    assertEquals(refusal(`${base}?ssl-mode=preferred`), [
      "db.url",
      `db.url: ssl-mode: "preferred" is not valid (jobsmanager does not fall back to plain text when TLS fails, as 'preferred' would; use required (or disabled))`,
    ]);
    assertEquals(refusal(base, { "db.ssl_mode": "required", "db.ssl_ca": ca }), [
      "db.ssl_ca",
      "db.ssl_ca: set, but db.ssl_mode is required, which does not check the server's certificate; set db.ssl_mode to verify_ca or verify_identity, or remove db.ssl_ca",
    ]);
    assertEquals(refusal(`${base}?ssl-mode=disabled&ssl-ca=${ca}`), [
      "db.url",
      "db.url's ssl-ca: set, but db.url's ssl-mode is disabled, so no TLS is used; remove it, or set db.url's ssl-mode to required, verify_ca or verify_identity",
    ]);
    assertEquals(refusal(base, { "db.ssl_mode": "required", "db.ssl_key": `${dir}/client.key` }), [
      "db.ssl_cert",
      "db.ssl_cert: missing; a client certificate needs both db.ssl_cert and db.ssl_key (db.ssl_key is set)",
    ]);
    assertEquals(refusal(base, { "db.ssl_ca": `${dir}/nothing.pem` }), [
      "db.ssl_ca",
      `db.ssl_ca: '${dir}/nothing.pem' cannot be read: NotFound`,
    ]);
    assertEquals(refusal(`${base}?ssl-ca=${dir}/notes.txt`), [
      "db.url",
      `db.url's ssl-ca: '${dir}/notes.txt' holds no CA certificate in PEM form (-----BEGIN …-----)`,
    ]);
    const locked = { "db.ssl_cert": `${dir}/client.pem`, "db.ssl_key": `${dir}/locked.key` };
    assertEquals(refusal(`${base}?ssl-mode=required`, locked), [
      "db.ssl_key",
      `db.ssl_key: '${dir}/locked.key' is encrypted, and jobsmanager cannot ask for its passphrase: decrypt it (openssl pkey -in KEY -out PLAIN) and keep it readable by the service's user alone`,
    ]);
    // A parameter it does not know is named, never quoted: it may hold a password.
    const [, unknown] = refusal(`${base}?user=root&password=Sup3rSecretPw`);
    assert(!unknown.includes("Sup3rSecretPw"), unknown);
    // The key's mode is checked with the rest of the file, before any connection.
    await Deno.writeTextFile(`${dir}/jobsmanager.json`, '{ db: { ssl_mode: "on" } }');
    const wrong = assertThrows(() => loadConfig({ config: `${dir}/jobsmanager.json` }, {}));
    assertEquals(
      (wrong as Error).message,
      `config ${dir}/jobsmanager.json: db.ssl_mode: "on" is not valid (expected one of disabled, required, verify_ca, verify_identity)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Two CAs; a server certificate the first signed for `localhost` alone
 * (not 127.0.0.1); client certificates for `x509u` signed by each.
 */
async function certificates(dir: string): Promise<void> {
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const key = (name: string) => ["-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`];
  for (const ca of ["ca", "other-ca"]) {
    await openssl(
      "req",
      "-x509",
      ...key(ca),
      "-days",
      "30",
      "-out",
      `${ca}.pem`,
      "-subj",
      `/CN=${ca}`,
    );
  }
  await Deno.writeTextFile(`${dir}/san.cnf`, "subjectAltName=DNS:localhost\n");
  const signed = async (name: string, cn: string, ca: string, extra: string[] = []) => {
    await openssl("req", ...key(name), "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    await openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-days",
      "30",
      "-out",
      `${name}.pem`,
      ...extra,
    );
  };
  await signed("server", "localhost", "ca", ["-extfile", "san.cnf"]);
  await signed("client", "x509u", "ca");
  await signed("stranger", "x509u", "other-ca");
}

Deno.test({
  name: "mysql tls: a server that takes TLS only is reached in every mode, and refused saying why",
  ignore: missing !== null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "jm-tls-" });
    try {
      await certificates(dir);
      const ca = await Deno.readTextFile(`${dir}/ca.pem`);
      await using server = await privateMariadb([
        `--ssl-ca=${dir}/ca.pem`,
        `--ssl-cert=${dir}/server.pem`,
        `--ssl-key=${dir}/server.key`,
        "--require-secure-transport=ON",
      ], { ca, rejectUnauthorized: false });
      const port = new URL(server.url).port;
      const at = (host: string, query: string) => `mysql://root@${host}:${port}/jobs${query}`;
      const jm = (url: string, ...args: string[]) =>
        cli(["--database", url, ...args], { cwd: dir });

      const trusted = at("localhost", `?ssl-mode=verify_identity&ssl-ca=${dir}/ca.pem`);
      const added = await jm(
        trusted,
        "job",
        "add",
        "tick",
        "--command",
        "echo tick",
        "--second",
        "*/1",
      );
      assertEquals(added.code, 0, added.stderr);
      for (
        const url of [
          at("127.0.0.1", "?ssl-mode=required"),
          // The CA checked, not the name: 127.0.0.1 is not in the certificate.
          at("127.0.0.1", `?ssl-ca=${dir}/ca.pem`),
        ]
      ) {
        const listed = await jm(url, "job", "list", "--json");
        assertEquals([listed.code, listed.stderr], [0, ""], url);
        assertEquals(JSON.parse(listed.stdout).map((j: { id: string }) => j.id), ["tick"]);
      }

      const refused = async (url: string, ...expected: string[]) => {
        const out = await jm(url, "job", "list", "--json");
        assertEquals(out.code, 1, `${url}: ${out.stderr}`);
        const error = JSON.parse(out.stderr.trim().split("\n").at(-1)!).error;
        assertEquals(error.kind, "refused", out.stderr);
        for (const part of expected) assertStringIncludes(error.message, part);
      };
      await refused(
        at("127.0.0.1", ""),
        "rejected the login of user 'root'",
        "(a server or user that requires TLS refuses a plain login so too: see db.ssl_mode)",
      );
      await refused(
        at("localhost", "?ssl-mode=verify_ca"),
        "TLS failed (self-signed certificate in certificate chain)",
        "the server's certificate is not signed by a CA this system trusts (update-ca-certificates, or SSL_CERT_FILE); set db.ssl_ca (ssl-ca= in the URL) to the CA file that signed it",
      );
      await refused(
        at("localhost", `?ssl-ca=${dir}/other-ca.pem`),
        "TLS failed",
        "the server's certificate is not signed by a CA in db.ssl_ca (or the URL's ssl-ca)",
      );

      // Without a CA of its own, the system's: what update-ca-certificates installs, or
      // SSL_CERT_FILE names (Node's TLS alone trusts only the roots it was built with).
      const system = await cli(
        ["--database", at("localhost", "?ssl-mode=verify_identity"), "job", "list", "--json"],
        { cwd: dir, env: { SSL_CERT_FILE: `${dir}/ca.pem` } },
      );
      assertEquals([system.code, system.stderr], [0, ""]);

      // A user that must show a client certificate (REQUIRE X509).
      await server.sql("CREATE USER x509u@'%' REQUIRE X509");
      await server.sql("GRANT ALL ON jobs.* TO x509u@'%'");
      const asX509 = (files: string) =>
        `mysql://x509u@localhost:${port}/jobs?ssl-ca=${dir}/ca.pem&ssl-mode=verify_identity${files}`;
      const mine = await jm(
        asX509(`&ssl-cert=${dir}/client.pem&ssl-key=${dir}/client.key`),
        "job",
        "list",
        "--json",
      );
      assertEquals([mine.code, mine.stderr], [0, ""]);
      await refused(
        asX509(""),
        "rejected the login of user 'x509u'",
        "a user created REQUIRE X509 (or SUBJECT, ISSUER) is refused so too without a client certificate: then set db.ssl_cert and db.ssl_key",
      );
      await refused(
        asX509(`&ssl-cert=${dir}/stranger.pem&ssl-key=${dir}/stranger.key`),
        "refused this client's TLS certificate (UnknownCA): give db.ssl_cert and db.ssl_key",
      );
      await refused(
        asX509(`&ssl-cert=${dir}/client.pem&ssl-key=${dir}/stranger.key`),
        "the client certificate (db.ssl_cert, or the URL's ssl-cert) and the key (db.ssl_key, ssl-key) are not a pair",
      );

      // The service: its scheduler's pool, the claims' and the HTTP side's, all through TLS.
      await using serve = new CliProcess(["--database", trusted, "serve"], {
        cwd: dir,
        env: { JM_HTTP_LISTEN: "127.0.0.1:0", JM_HTTP_TOKEN: ADMIN },
      });
      const ran = await waitFor(async () => {
        const runs = await jm(trusted, "runs", "--json");
        const rows = runs.code === 0 ? JSON.parse(runs.stdout) as { status: string }[] : [];
        return rows.some((r) => r.status === "success") ? rows : null;
      }, { timeoutMs: 30_000, what: "serve to run tick through TLS", detail: () => serve.stderr });
      assert(ran.length > 0);
      serve.signal("SIGTERM");
      assertEquals((await serve.exit(30_000)).code, 0, serve.stderr);
      assert(!/"level":"(ERROR|FATAL)"/.test(serve.stderr), serve.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (missing !== null) {
  Deno.test({
    name:
      `${missing}: the TLS server test is skipped (JM_TEST_DATABASE_URL, mariadb-server, openssl)`,
    ignore: true,
    fn: () => {},
  });
}
