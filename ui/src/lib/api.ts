// Typed calls into the Tauri shell (src-tauri/src/commands) and its events.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type {
  AgentEvent, AgentReport, ApprovalMode, Decision, AppliedChange, Applied, Answered, CmdError, Command, Conversation, ConversationSummary, Events, HardwareSummary,
  EmbedderChoice, InstalledModel, ModelsOverview, NetworkStatus, Project, ProjectStatus, Proposal, ProposalSummary, ServerStatus,
} from "./bindings";

// The types the views use, generated from the Rust types (src-tauri/src/bindings.rs).
export type * from "./bindings";

/** The words to show for anything a command or the window threw. */
export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}

/** Whether `e` is a command failure (a `CmdError`: the engine's error kind, or "other") of `kind`. */
export function isError(e: unknown, kind: string): boolean {
  return !!e && typeof e === "object" && (e as Partial<CmdError>).kind === kind;
}

/** Calls a shell command; only the commands the shell registers type-check. */
function call<T>(command: Command, args?: Record<string, unknown>): Promise<T> {
  return invoke<T>(command, args);
}

export const api = {
  projects: () => call<ProjectStatus[]>("projects_list"),
  addProject: (path: string) => call<Project>("project_add", { path }),
  removeProject: (root: string) => call<void>("project_remove", { root }),
  readFile: (root: string, path: string) => call<string>("read_file", { root, path }),
  // The answer's text streams into onText as it is decoded.
  ask: (root: string, conversation: string | null, question: string, request: string, onText: (text: string) => void) =>
    call<Answered>("ask", { root, conversation, question, request, onText: channel(onText) }),
  stop: (request: string) => call<void>("stop_generation", { request }),
  conversations: (root: string) => call<ConversationSummary[]>("conversations_list", { root }),
  conversation: (root: string, id: string) => call<Conversation>("conversation_load", { root, id }),
  deleteConversation: (root: string, id: string) => call<boolean>("conversation_delete", { root, id }),
  proposeEdit: (root: string, instruction: string, request: string, onText: (text: string) => void) =>
    call<Proposal>("propose_edit", { root, instruction, request, onText: channel(onText) }),
  proposals: (root: string) => call<ProposalSummary[]>("proposals_list", { root }),
  proposal: (root: string, id: string) => call<Proposal>("proposal_load", { root, id }),
  // confirm: the user confirmed the held changes among these hunks.
  apply: (root: string, id: string, hunks: number[] | null, confirm = false) => call<Applied>("proposal_apply", { root, id, hunks, confirm }),
  undo: (root: string, id: string | null) => call<AppliedChange>("undo", { root, id }),
  history: (root: string) => call<AppliedChange[]>("history", { root }),
  // The run's calls and steps stream into onEvent; a command waiting for approval into onApproval.
  agentRun: (root: string, task: string, approval: ApprovalMode, request: string, onEvent: (e: AgentEvent) => void, onApproval: (command: string) => void) =>
    call<AgentReport>("agent_run", { root, task, approval, request, onEvent: channel(onEvent), onApproval: channel(onApproval) }),
  agentApprove: (request: string, decision: Decision) => call<void>("agent_approve", { request, decision }),
  agentStop: (request: string) => call<void>("agent_stop", { request }),
  agentRewind: (root: string, run: string, step: number) => call<AppliedChange[]>("agent_rewind", { root, run, step }),
  hardware: () => call<HardwareSummary>("hardware_summary"),
  models: () => call<ModelsOverview>("models_list"),
  importModel: (path: string, moveFile = false) => call<InstalledModel>("model_import", { path, moveFile }),
  pullModel: (id: string) => call<InstalledModel>("model_pull", { id }),
  cancelPull: (id: string) => call<void>("model_pull_cancel", { id }),
  discardDownload: (id: string) => call<number>("model_discard_download", { id }),
  selectModel: (id: string) => call<void>("model_select", { id }),
  embedders: () => call<EmbedderChoice[]>("embedders_list"),
  selectEmbedder: (id: string) => call<EmbedderChoice[]>("embedder_select", { id }),
  removeModel: (id: string) => call<InstalledModel>("model_remove", { id }),
  network: () => call<NetworkStatus>("network_status"),
  networkAllow: (host: string) => call<NetworkStatus>("network_allow", { host }),
  networkDisallow: (host: string) => call<NetworkStatus>("network_disallow", { host }),
  networkOffline: () => call<NetworkStatus>("network_offline"),
  server: () => call<ServerStatus>("server_settings"),
  useServer: (url: string, model: string | null, apiKey: string | null) => call<void>("server_use", { url, model, apiKey }),
  stopUsingServer: () => call<void>("server_stop_using"),
};

/** A window event after anything that may have changed the network state or its log. */
export const NETWORK_CHANGED = "perimeter:network-changed";
export function networkChanged() {
  window.dispatchEvent(new Event(NETWORK_CHANGED));
}

/** Listens to a shell event; names and payloads come from the shell's event list. */
export function on<E extends keyof Events>(event: E, handler: (payload: Events[E]) => void): Promise<UnlistenFn> {
  return listen<Events[E]>(event, (e) => handler(e.payload));
}

function channel<T>(handler: (message: T) => void): Channel<T> {
  const c = new Channel<T>();
  c.onmessage = handler;
  return c;
}

let counter = 0;
export function requestId(): string {
  counter += 1;
  return `r${Date.now().toString(36)}-${counter}`;
}
