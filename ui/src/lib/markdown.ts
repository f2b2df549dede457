// The model's markdown as safe HTML: marked to render, highlight.js for code blocks,
// DOMPurify so nothing in an answer can run script or load anything.
import { Marked } from "marked";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const language = lang && hljs.getLanguage(lang) ? lang : undefined;
      const html = language ? hljs.highlight(text, { language }).value : hljs.highlightAuto(text).value;
      return `<pre><code class="hljs">${html}</code></pre>`;
    },
  },
});

/** `path:start-end` references become links the chat view opens in the file viewer. */
const CITATION = /(^|[\s(`])([\w.@+\-/]+\.\w{1,10}(?::\d+(?:-\d+)?)?)(?=[\s).,;:`]|$)/g;

export function renderAnswer(markdown: string, validCitations: Set<string>): string {
  const html = marked.parse(markdown, { async: false }) as string;
  const clean = DOMPurify.sanitize(html, { FORBID_TAGS: ["img", "iframe", "form", "style"], FORBID_ATTR: ["style"] });
  if (validCitations.size === 0) return clean;
  // Link citations in text nodes only, never inside tags.
  return clean.replace(/>([^<]+)</g, (_m, text: string) =>
    ">" + text.replace(CITATION, (all, pre: string, ref: string) =>
      validCitations.has(ref) ? `${pre}<a href="#" class="cite" data-cite="${ref}">${ref}</a>` : all) + "<");
}
