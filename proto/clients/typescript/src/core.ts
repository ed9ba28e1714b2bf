// The core of Kiln's clients in TypeScript, shared as it is by the platform client
// (proto/clients/typescript) and every workspace SDK (the `sdk-typescript` template set
// carries this file): a connection to the gateway over Connect's grpc-web transport, the
// access token on every call and its refresh, paging, and errors that carry the server's
// field details. It needs only the generated auth and error-details messages.

import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import { AuthService, type TokenPair, type User } from "./gen/kiln/v1/auth_pb.js";

export { Code } from "@connectrpc/connect";

/** A call the server refused or could not answer. */
export class KilnError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    /** Field name → what is wrong with it (for `Code.InvalidArgument`). */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = "KilnError";
  }

  /** The error `reason` (anything thrown by a call) stands for. */
  static from(reason: unknown): KilnError {
    if (reason instanceof KilnError) return reason;
    const error = ConnectError.from(reason);
    const fields: Record<string, string> = {};
    for (const bad of error.findDetails(BadRequestSchema)) {
      for (const violation of bad.fieldViolations) fields[violation.field] = violation.description;
    }
    return new KilnError(error.code, error.rawMessage, fields);
  }
}

/** The signed-in session's tokens. */
export interface Session {
  accessToken: string;
  refreshToken: string;
}

export interface KilnOptions {
  /** The gateway, e.g. `http://localhost:4000`. */
  baseUrl: string;
  /** Tokens of a session already signed in. */
  session?: Session;
  /** Another transport (e.g. connect-node's gRPC); the default is grpc-web over fetch. */
  transport?: (interceptors: Interceptor[]) => Transport;
}

/** A client whose methods throw [`KilnError`]s. */
export type Service<S extends DescService> = Client<S>;

function typedErrors<S extends DescService>(service: S, client: Client<S>): Client<S> {
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const call = (client as Record<string, (...args: unknown[]) => unknown>)[method.localName];
    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (...args: unknown[]) => {
        try {
          return await call(...args);
        } catch (reason) {
          throw KilnError.from(reason);
        }
      };
    } else {
      wrapped[method.localName] = async function* (...args: unknown[]) {
        try {
          yield* call(...args) as AsyncIterable<unknown>;
        } catch (reason) {
          throw KilnError.from(reason);
        }
      };
    }
  }
  return wrapped as Client<S>;
}

/** A connection to Kiln's gateway: sign-in, and clients of any service whose calls carry
 * the token and throw [`KilnError`]s. */
export class Connection {
  readonly session: Session;
  readonly auth: Client<typeof AuthService>;
  private readonly signed: Transport;
  private readonly plain: Client<typeof AuthService>;
  private refreshing: Promise<boolean> | undefined;

  constructor(options: KilnOptions) {
    this.session = options.session ?? { accessToken: "", refreshToken: "" };
    const transport = options.transport ?? ((interceptors) => createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors }));
    this.signed = transport([this.withToken()]);
    this.auth = this.client(AuthService);
    this.plain = createClient(AuthService, transport([]));
  }

  /** A client of `service` over this connection. */
  client<S extends DescService>(service: S): Client<S> {
    return typedErrors(service, createClient(service, this.signed));
  }

  /** Creates an account (and its workspace) and signs in as it. */
  async register(email: string, password: string, displayName = ""): Promise<User | undefined> {
    const answer = await this.auth.register({ email, password, displayName });
    this.keep(answer.tokens);
    return answer.user;
  }

  async login(email: string, password: string): Promise<User | undefined> {
    const answer = await this.auth.login({ email, password });
    this.keep(answer.tokens);
    return answer.user;
  }

  private keep(tokens: TokenPair | undefined): void {
    this.session.accessToken = tokens?.accessToken ?? "";
    this.session.refreshToken = tokens?.refreshToken ?? "";
  }

  /** The token on every call; a unary call refused as unauthenticated is made once more
   * after a refresh. */
  private withToken(): Interceptor {
    return (next) => async (request) => {
      const token = this.session.accessToken;
      if (token) request.header.set("authorization", `Bearer ${token}`);
      try {
        return await next(request);
      } catch (reason) {
        const unauthenticated = ConnectError.from(reason).code === Code.Unauthenticated;
        if (!request.stream && unauthenticated && token && (await this.refresh(token))) {
          request.header.set("authorization", `Bearer ${this.session.accessToken}`);
          return await next(request);
        }
        throw reason;
      }
    };
  }

  /** Trades the refresh token for new tokens, one refresh at a time, unless another call
   * already did since `refused` was current. False: the session cannot go on. */
  private refresh(refused: string): Promise<boolean> {
    if (this.session.accessToken !== refused) return Promise.resolve(true);
    this.refreshing ??= (async () => {
      try {
        if (!this.session.refreshToken) return false;
        const answer = await this.plain.refresh({ refreshToken: this.session.refreshToken });
        this.keep(answer.tokens);
        return true;
      } catch {
        return false;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}

/** Every item of every page a List method answers (`items` names the repeated field),
 * following `nextPageToken` until the last page. */
export async function* each<Request extends { pageToken?: string }, Page extends { nextPageToken: string }, K extends keyof Page>(
  list: (request: Request) => Promise<Page>,
  request: Request,
  items: K,
): AsyncGenerator<Page[K] extends (infer Item)[] ? Item : never> {
  let pageToken = request.pageToken ?? "";
  for (;;) {
    const page = await list({ ...request, pageToken });
    for (const item of page[items] as unknown as Iterable<Page[K] extends (infer Item)[] ? Item : never>) yield item;
    if (!page.nextPageToken) return;
    pageToken = page.nextPageToken;
  }
}
