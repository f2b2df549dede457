// CodeMirror language support by file name, shared by the file viewer and the diff view.
import type { Extension } from "@codemirror/state";
import { python } from "@codemirror/lang-python";
import { rust } from "@codemirror/lang-rust";
import { javascript } from "@codemirror/lang-javascript";

export function languageFor(path: string): Extension[] {
  if (path.endsWith(".py")) return [python()];
  if (path.endsWith(".rs")) return [rust()];
  if (/\.(m?[jt]sx?)$/.test(path)) return [javascript({ typescript: /\.tsx?$/.test(path) })];
  return [];
}
