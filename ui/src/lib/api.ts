// Typed calls into the Tauri shell (src-tauri/src/commands) and its events.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export interface Project { name: string; root: string; index_dir: string; files: number | null; watching: boolean }
export interface IndexProgress { root: string; files_done: number; files_total: number; bytes_done: number; bytes_total: number; mb_per_s: number }
export interface IndexSummary { files_indexed: number; files_unchanged: number; files_removed: number; chunks_indexed: number; bytes_indexed: number; elapsed_ms: number; cancelled: boolean }
export interface ExcerptUse { path: string; start_line: number; end_line: number; score: number; tokens: number }
export interface PromptReport {
  context_window: number; prompt_tokens: number; answer_tokens: number;
  included: ExcerptUse[]; dropped: ExcerptUse[]; exchanges_included: number; exchanges_dropped: number; notes: string[];
  earlier_turns_verbatim?: boolean; already_shown?: ExcerptUse[];
}
export interface Citation { text: string; path: string | null; start_line: number | null; end_line: number | null; valid: boolean; problem: string | null }
export interface Usage { prompt_tokens: number | null; completion_tokens: number; time_to_first_token_ms: number | null; decode_tokens_per_s: number | null; total_ms: number }
export interface Turn { question: string; sent?: string; answer: string; stop: "end_of_text" | "length" | "cancelled" | "connection_lost"; model: string; asked_at: number; context: PromptReport; citations: Citation[]; usage: Usage }
export interface ConversationSummary { id: string; title: string; updated_at: number; turns: number }
export interface Conversation { id: string; title: string; created_at: number; updated_at: number; turns: Turn[] }
export interface DiffLine { kind: "context" | "added" | "removed"; text: string; no_newline: boolean }
export interface Hunk { number: number; old_start: number; old_lines: number; new_start: number; new_lines: number; lines: DiffLine[] }
export interface Hold { kind: string; reason: string; safe_action: string }
export interface FileChange { path: string; kind: "modify" | "create" | "delete"; old_text: string; new_text: string; hunks: Hunk[]; diff: string; hold: Hold | null }
export interface BlockProblem { block: number; path: string | null; reason: string; closest: { start_line: number; lines: string[]; similarity: number } | null }
export interface Proposal { id: string; instruction: string; created_at: number; model: string; answer: string; files: FileChange[]; problems: BlockProblem[]; unchanged?: string[]; context: PromptReport }
export interface ProposalSummary { id: string; instruction: string; created_at: number; files: number; problems: number }
export interface AppliedChange { id: string; proposal_id: string; instruction: string; applied_at: number; files: { path: string; kind: string; hunks: number[] }[]; undone_at: number | null }
export interface InstalledModel { id: string; catalog_id: string | null; file: string; linked: boolean; sha256: string; info: { architecture: string; quantization: string; parameter_count: number; file_size: number; context_length: number | null } }
export interface CatalogEntry { id: string; display_name: string; quantization: string; size_bytes: number; role: "assistant" | "development"; installed: boolean; partial_bytes: number; downloading: boolean }
export interface ModelsOverview { installed: InstalledModel[]; active: string | null; loaded: string | null; folder: string; catalog: CatalogEntry[] }
export interface PullProgress { model: string; phase: "checking" | "downloading"; source: string; done: number; total: number; resumed_from: number; bytes_per_s: number; eta_s: number | null }
export interface ModelFit { model: { id: string; display_name?: string; parameters_b?: number; quantization: string; size_bytes: number }; class: string; reason?: string }
export interface ConnectionRecord { at: number; host: string; port: number; purpose: string; bytes_sent: number; bytes_received: number; outcome: string }
export interface NetworkStatus { mode: "offline" | "allowlist"; summary: string; allowed_hosts: string[]; user_hosts: string[]; admin_files: string[]; log: ConnectionRecord[]; log_path: string }
export interface ServerStatus { url: string | null; model: string | null; has_key: boolean }
export interface HardwareSummary { hardware: any; assessment: any }

/** `model-load`: a model loading (or a company server connecting) for the first request. */
export type ModelEvent =
  | { stage: "loading"; source: string }
  | { stage: "loaded"; name: string; seconds: number }
  | { stage: "failed"; reason: string }
  | { stage: "unloaded" };

/** What a failed command rejects with: a stable `kind` (the engine's error kind, or "other") to
 * decide by, and a `message` that says what to do. */
export type CommandError = { kind: string; message: string };

/** The words to show for anything a command or the window threw. */
export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}

/** Whether `e` is a command failure of `kind`. */
export function isError(e: unknown, kind: string): boolean {
  return !!e && typeof e === "object" && (e as { kind?: unknown }).kind === kind;
}

export const api = {
  projects: () => invoke<Project[]>("projects_list"),
  addProject: (path: string) => invoke<Project>("project_add", { path }),
  removeProject: (root: string) => invoke<void>("project_remove", { root }),
  readFile: (root: string, path: string) => invoke<string>("read_file", { root, path }),
  ask: (root: string, conversation: string | null, question: string, request: string) =>
    invoke<{ conversation: ConversationSummary; turn: Turn }>("ask", { root, conversation, question, request }),
  stop: (request: string) => invoke<void>("stop_generation", { request }),
  conversations: (root: string) => invoke<ConversationSummary[]>("conversations_list", { root }),
  conversation: (root: string, id: string) => invoke<Conversation>("conversation_load", { root, id }),
  deleteConversation: (root: string, id: string) => invoke<boolean>("conversation_delete", { root, id }),
  proposeEdit: (root: string, instruction: string, request: string) => invoke<Proposal>("propose_edit", { root, instruction, request }),
  proposals: (root: string) => invoke<ProposalSummary[]>("proposals_list", { root }),
  proposal: (root: string, id: string) => invoke<Proposal>("proposal_load", { root, id }),
  // confirm: the user confirmed the held changes among these hunks.
  apply: (root: string, id: string, hunks: number[] | null, confirm = false) => invoke<AppliedChange>("proposal_apply", { root, id, hunks, confirm }),
  undo: (root: string, id: string | null) => invoke<AppliedChange>("undo", { root, id }),
  history: (root: string) => invoke<AppliedChange[]>("history", { root }),
  hardware: () => invoke<HardwareSummary>("hardware_summary"),
  models: () => invoke<ModelsOverview>("models_list"),
  importModel: (path: string, moveFile = false) => invoke<InstalledModel>("model_import", { path, moveFile }),
  pullModel: (id: string) => invoke<InstalledModel>("model_pull", { id }),
  cancelPull: (id: string) => invoke<void>("model_pull_cancel", { id }),
  discardDownload: (id: string) => invoke<number>("model_discard_download", { id }),
  selectModel: (id: string) => invoke<void>("model_select", { id }),
  removeModel: (id: string) => invoke<InstalledModel>("model_remove", { id }),
  network: () => invoke<NetworkStatus>("network_status"),
  networkAllow: (host: string) => invoke<NetworkStatus>("network_allow", { host }),
  networkDisallow: (host: string) => invoke<NetworkStatus>("network_disallow", { host }),
  networkOffline: () => invoke<NetworkStatus>("network_offline"),
  server: () => invoke<ServerStatus>("server_settings"),
  useServer: (url: string, model: string | null, apiKey: string | null) => invoke<void>("server_use", { url, model, apiKey }),
  stopUsingServer: () => invoke<void>("server_stop_using"),
};

/** A window event after anything that may have changed the network state or its log. */
export const NETWORK_CHANGED = "perimeter:network-changed";
export function networkChanged() {
  window.dispatchEvent(new Event(NETWORK_CHANGED));
}

export function on<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e) => handler(e.payload));
}

let counter = 0;
export function requestId(): string {
  counter += 1;
  return `r${Date.now().toString(36)}-${counter}`;
}
