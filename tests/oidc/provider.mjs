// A real OpenID provider for the tests (the certified `oidc-provider` package) on loopback.
//
//   node provider.mjs PORT KEYS_FILE
//
// KEYS_FILE holds {"keys": [private JWKs]}; the first signs. Access tokens are RFC 9068 JWTs for
// the resource `policyflow` carrying role, unit_id and supervises, read from the account id that
// the dev sign-in form takes: `ROLE` or `ROLE:UNIT` or `ROLE:UNIT:SCOPE,SCOPE` (UNIT may be empty:
// `supervisor::unit:yuzhong`).
// Test hooks, reachable on loopback only:
//   POST /__rotate   re-read KEYS_FILE (a key rotation: the new first key signs from now on)
//   POST /__token?account=ID   an access token for that account, made by the provider itself
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, keysFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
// A resource indicator is an absolute URI (RFC 8707); the tokens' audience is `policyflow`.
const RESOURCE = 'urn:policyflow:api';
const AUDIENCE = 'policyflow';

function claimsOf(accountId) {
  const [role, unit, ...rest] = accountId.split(':');
  const scope = rest.join(':');
  return {
    role,
    ...(unit ? { unit_id: unit } : {}),
    ...(scope ? { supervises: scope.split(',') } : {}),
  };
}

function configuration() {
  return {
    clients: [
      {
        // The pages (a confidential client); a loopback redirect on any port, as the tests' services use.
        client_id: 'policyflow',
        client_secret: 'pages-secret',
        application_type: 'native',
        redirect_uris: ['http://127.0.0.1/auth/oidc/callback'],
        post_logout_redirect_uris: ['http://127.0.0.1/workbench/login', 'http://127.0.0.1/dashboard/login'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
      {
        client_id: 'policyflow-cli',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    jwks: JSON.parse(fs.readFileSync(keysFile, 'utf8')),
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, ...claimsOf(id) }) }),
    claims: { openid: ['sub'], profile: ['role', 'unit_id', 'supervises'] },
    scopes: ['openid', 'profile', 'offline_access'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: 'api',
          audience: AUDIENCE,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) => (token.accountId ? claimsOf(token.accountId) : undefined),
    // Consent is taken as given: the tests sign in, they do not click through a consent page.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.session?.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile offline_access');
      grant.addResourceScope(RESOURCE, 'api');
      await grant.save();
      return grant;
    },
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AuthorizationCode: 60, RefreshToken: 3600, IdToken: 600 },
  };
}

let provider = new Provider(issuer, configuration());

async function hook(req, res) {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/__rotate') {
    provider = new Provider(issuer, configuration());
    res.end('rotated');
    return;
  }
  const client = await provider.Client.find('policyflow');
  const token = new provider.AccessToken({
    accountId: url.searchParams.get('account'),
    client,
    scope: 'api',
    resourceServer: new provider.ResourceServer(RESOURCE, {
      scope: 'api', audience: AUDIENCE, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
    }),
  });
  res.setHeader('content-type', 'text/plain');
  res.end(await token.save());
}

http
  .createServer((req, res) => {
    if (req.url.startsWith('/__') && req.method === 'POST') {
      hook(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    provider.callback()(req, res);
  })
  .listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
