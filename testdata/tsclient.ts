// Type-checked against the client types openapi-typescript generates (with its defaults)
// from the served OpenAPI document: see TestOpenAPITypeScriptClient.
import type { paths } from "./schema";

type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;

// A minimal create needs no field that has a server-side default.
type CreateBody = Json<NonNullable<paths["/v1/tasks"]["post"]["requestBody"]>>;
const minimal: CreateBody = { targetUrl: "https://example.com/hook", waitForSignal: true };

// A create's answer (201, or 200 on an idempotent replay) reads as one type.
type CreateResponses = paths["/v1/tasks"]["post"]["responses"];
declare const created: Json<CreateResponses[200]> | Json<CreateResponses[201]>;
const token: string | undefined = created.signalToken;
const id: string = created.task.id;

// A signal, and a list filtered by several statuses (sent as a repeated parameter).
type SignalBody = Json<NonNullable<paths["/v1/signals/{token}"]["post"]["requestBody"]>>;
const signal: SignalBody = { status: "completed", result: { ok: true } };
type ListQuery = NonNullable<paths["/v1/tasks"]["get"]["parameters"]["query"]>;
const query: ListQuery = { status: ["waiting", "failed"], limit: 500 };
declare const page: Json<paths["/v1/tasks"]["get"]["responses"][200]>;
const omitted: string[] | undefined = page.tasks[0]?.omitted;

export { minimal, token, id, signal, query, omitted };
