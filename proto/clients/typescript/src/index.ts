// Kiln's platform API from TypeScript, in Node (18+) and the browser: the `kiln.v1`
// messages and services generated from proto/kiln/v1 (protobuf-es; do not edit src/gen)
// over the core's connection (./core.ts, the same core as every workspace SDK).

import type { Client } from "@connectrpc/connect";
import { ApplicationService } from "./gen/kiln/v1/application_pb.js";
import { BuildService } from "./gen/kiln/v1/build_pb.js";
import { EntityService } from "./gen/kiln/v1/entity_pb.js";
import { ModelService } from "./gen/kiln/v1/model_pb.js";
import { TemplateService } from "./gen/kiln/v1/template_pb.js";
import { Connection, type KilnOptions } from "./core.js";

export * from "./core.js";
export * from "./gen/kiln/v1/application_pb.js";
export * from "./gen/kiln/v1/auth_pb.js";
export * from "./gen/kiln/v1/build_pb.js";
export * from "./gen/kiln/v1/entity_pb.js";
export * from "./gen/kiln/v1/model_pb.js";
export * from "./gen/kiln/v1/template_pb.js";

/** Kiln's platform API: its services as properties, each call carrying the token. */
export class Kiln extends Connection {
  readonly models: Client<typeof ModelService>;
  readonly entities: Client<typeof EntityService>;
  readonly applications: Client<typeof ApplicationService>;
  readonly templates: Client<typeof TemplateService>;
  readonly builds: Client<typeof BuildService>;

  constructor(options: KilnOptions) {
    super(options);
    this.models = this.client(ModelService);
    this.entities = this.client(EntityService);
    this.applications = this.client(ApplicationService);
    this.templates = this.client(TemplateService);
    this.builds = this.client(BuildService);
  }
}
