// wenda web page: ask, show the answer with its citations (the quote
// highlighted inside its paragraph), open the cited article at that paragraph.
// Plain browser JavaScript, no build step; only same-origin requests.
"use strict";

const $ = (id) => document.getElementById(id);
const articles = new Map(); // article id -> Promise of the article JSON
let readyTimer = null;

// Offsets from the server count Unicode code points (Python), JavaScript
// strings count UTF-16 units: slice by code points so that a character outside
// the BMP cannot shift the highlight.
function codePoints(text) {
  return Array.from(text);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function apiKey() {
  return sessionStorage.getItem("wenda-api-key") || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    return { ok: false, status: 0, data: { detail: "无法连接服务。Cannot reach the service." } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = { detail: `${response.status} ${response.statusText}` };
  }
  return { ok: response.ok, status: response.status, data };
}

// /v1/ask with stream: true. The LLM's words go to onDelta as they come
// (unchecked); the result is the final `answer` event, shaped like api()'s.
// Errors are answered before the stream starts, as plain JSON.
async function askStream(body, onDelta) {
  const headers = { Accept: "text/event-stream", "Content-Type": "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch("/v1/ask", { method: "POST", headers, body: JSON.stringify({ ...body, stream: true }) });
  } catch (err) {
    return { ok: false, status: 0, data: { detail: "无法连接服务。Cannot reach the service." } };
  }
  if (!response.ok || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = { detail: `${response.status} ${response.statusText}` };
    }
    return { ok: false, status: response.status, data };
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let streamed = "";
  let final = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const name = (block.match(/^event: (.*)$/m) || [])[1];
      const data = (block.match(/^data: (.*)$/m) || [])[1];
      if (name === "delta") {
        streamed += JSON.parse(data).text;
        onDelta(streamed);
      } else if (name === "answer") {
        final = JSON.parse(data);
      }
    }
  }
  if (!final) return { ok: false, status: 0, data: { detail: "回答中断。The answer stream ended early." } };
  return { ok: true, status: 200, data: final };
}

// ---- status ------------------------------------------------------------------------
function showBanner(text) {
  const banner = $("status");
  banner.textContent = text;
  banner.hidden = !text;
}

function showMessage(text, isError = false) {
  const box = $("message");
  box.textContent = text || "";
  box.className = isError ? "message error" : "message";
  box.hidden = !text;
}

async function checkReady() {
  clearTimeout(readyTimer);
  const { ok, status, data } = await api("/readyz");
  if (ok || status === 401) {
    // 401: readiness is behind WENDA_API_KEY_READS; asking will ask for the key.
    showBanner("");
    return true;
  }
  const why = (data && data.detail) || `HTTP ${status}`;
  showBanner(`服务尚未就绪，暂时无法回答问题。Service not ready: ${why}`);
  readyTimer = setTimeout(checkReady, 5000);
  return false;
}

function needKey() {
  $("key-row").hidden = false;
  $("api-key").focus();
  showMessage("需要 API 密钥：请在上方填写后重试。This server needs an API key; enter it above and ask again.", true);
}

// ---- highlighting ----------------------------------------------------------------------
// The paragraph's text as DOM nodes, with the cited sentence in <mark> and the
// short answer inside it in <strong>. Offsets are into the article text.
function highlightedParagraph(paragraph, citation) {
  const chars = codePoints(paragraph.text);
  const clamp = (n) => Math.max(0, Math.min(chars.length, n - paragraph.start));
  const qs = clamp(citation.start);
  const qe = clamp(citation.end);
  const out = document.createDocumentFragment();
  out.append(chars.slice(0, qs).join(""));
  const mark = el("mark", { class: "quote" });
  if (citation.answer_start !== null && citation.answer_start !== undefined) {
    const as = Math.max(qs, clamp(citation.answer_start));
    const ae = Math.min(qe, clamp(citation.answer_end));
    mark.append(chars.slice(qs, as).join(""), el("strong", { class: "short", text: chars.slice(as, ae).join("") }),
      chars.slice(ae, qe).join(""));
  } else {
    mark.append(chars.slice(qs, qe).join(""));
  }
  out.append(mark, chars.slice(qe).join(""));
  return out;
}

function loadArticle(articleId) {
  if (!articles.has(articleId)) {
    const request = api(`/v1/articles/${encodeURIComponent(articleId)}`).then((r) => {
      if (!r.ok) {
        articles.delete(articleId);
        throw r;
      }
      return r.data;
    });
    articles.set(articleId, request);
  }
  return articles.get(articleId);
}

function paragraphOf(article, citation) {
  return article.paragraphs.find((p) => p.paragraph === citation.paragraph)
    || { paragraph: citation.paragraph, start: citation.start, end: citation.end, text: citation.quote };
}

// ---- rendering -------------------------------------------------------------------------
function citationCard(citation, index) {
  const where = el("p", { class: "where" });
  if (citation.section && citation.section !== citation.title) where.append(`${citation.section} · `);
  where.append(el("span", { class: "pno", text: `第${citation.paragraph}段` }));
  const para = el("p", { class: "para" }, el("mark", { class: "quote", text: citation.quote }));
  const card = el("li", { class: "card", tabindex: "0", role: "button", "data-article": citation.article_id,
    "data-paragraph": String(citation.paragraph), title: "查看全文 Read the article" },
  el("h3", {}, `[${citation.marker || index + 1}] `, citation.title), where, para);
  const open = () => openArticle(citation, card);
  card.addEventListener("click", open);
  card.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open();
    }
  });
  // The quote alone first; then, once the article is here, its whole paragraph.
  loadArticle(citation.article_id).then((article) => {
    para.replaceChildren(highlightedParagraph(paragraphOf(article, citation), citation));
  }).catch(() => {});
  return card;
}

// ---- the conversation ------------------------------------------------------------------
// Earlier turns of this page's conversation, oldest first: the standalone
// question wenda answered and what it showed. Sent as `history`, so that a
// follow-up (那江西呢？) is read against them.
const turns = [];

function renderConversation() {
  const list = $("conversation");
  list.replaceChildren();
  turns.forEach((t) => list.append(el("li", {}, el("span", { class: "q", text: t.question }), " ",
    el("span", { class: "a", text: t.answer }))));
  $("conversation-box").hidden = turns.length === 0;
}

function newConversation() {
  turns.length = 0;
  renderConversation();
  $("result").hidden = true;
  $("question").value = "";
  $("question").focus();
}

// Who wrote the answer and what the check did (LLM answers only).
function checkNote(result) {
  if (!result.answerer) return "";
  if (result.fallback) return ` · ${result.fallback}`;
  const dropped = (result.sentences || []).filter((s) => !s.supported);
  const note = " · 由 LLM 撰写，每句已核对出处 written by the LLM, every sentence checked against its source";
  return dropped.length ? `${note} · 删去 ${dropped.length} 句无出处支持的句子 removed ${dropped.length} unsupported: `
    + dropped.map((s) => `“${s.text}”（${s.reason}）`).join(" ") : note;
}

function renderAnswer(result) {
  $("result").hidden = false;
  const understood = $("understood");
  understood.hidden = !result.rewritten_by;
  understood.textContent = result.rewritten_by ? `问题理解为 Understood as：${result.question}` : "";
  const answer = $("answer");
  const list = $("citations");
  list.replaceChildren();
  const heading = $("sources-heading");
  if (!result.answerable) {
    answer.className = "answer none";
    answer.replaceChildren(el("strong", { text: "没有找到答案：资料中没有回答这个问题的内容。" }),
      el("strong", { class: "en", text: " No answer: the articles do not answer this question." }));
    $("answer-meta").textContent = `用时 ${Math.round(result.took_ms)} ms${checkNote(result)}`;
    const related = result.related || [];
    heading.hidden = related.length === 0;
    heading.replaceChildren("相关段落（不是答案） ", el("span", { class: "en", text: "Related passages, not an answer" }));
    related.forEach((c, i) => list.append(citationCard(c, i)));
    return;
  }
  // The short answer when wenda is sure of it; else the sentence that holds it.
  answer.className = result.short_answer === null ? "answer sentence" : "answer";
  answer.textContent = result.answer;
  const shown = result.short_answer === null ? "原句 the supporting sentence · " : "";
  $("answer-meta").textContent =
    `${shown}可信度 confidence ${result.confidence.toFixed(2)} · 用时 ${Math.round(result.took_ms)} ms${checkNote(result)}`;
  heading.hidden = result.citations.length === 0;
  heading.replaceChildren("出处 ", el("span", { class: "en", text: "Sources" }));
  result.citations.forEach((c, i) => list.append(citationCard(c, i)));
}

async function openArticle(citation, card) {
  document.querySelectorAll(".card.active").forEach((c) => c.classList.remove("active"));
  card.classList.add("active");
  let article;
  try {
    article = await loadArticle(citation.article_id);
  } catch (r) {
    showMessage((r.data && r.data.detail) || "无法打开文章。Cannot open the article.", true);
    return;
  }
  const panel = $("article");
  $("article-title").textContent = article.title;
  $("article-meta").textContent = [article.date, article.source].filter(Boolean).join(" · ");
  // Only web links: an index written before URLs were checked may hold others.
  if (article.url && /^https?:\/\//i.test(article.url)) {
    const link = el("a", { href: article.url, rel: "noopener noreferrer", target: "_blank", text: "原文 source" });
    $("article-meta").append(article.date || article.source ? " · " : "", link);
  }
  const body = $("article-body");
  body.replaceChildren();
  let target = null;
  for (const p of article.paragraphs) {
    const num = el("span", { class: "num", text: `${p.paragraph}` });
    const node = el(p.is_heading ? "h3" : "p", { id: `para-${p.paragraph}`, "data-paragraph": String(p.paragraph) },
      num);
    if (p.paragraph === citation.paragraph) {
      node.classList.add("cited");
      node.append(highlightedParagraph(p, citation));
      target = node;
    } else {
      node.append(p.text);
    }
    body.append(node);
  }
  panel.hidden = false;
  if (target) target.scrollIntoView({ block: "center", behavior: "instant" });
}

// ---- asking -------------------------------------------------------------------------------
async function ask(event) {
  event.preventDefault();
  const question = $("question").value;
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem("wenda-api-key", key);
  if (!question.trim()) {
    showMessage("请输入问题。Type a question.", true);
    return;
  }
  const button = $("ask-button");
  button.disabled = true;
  showMessage("正在查找答案… Looking for the answer…");
  const body = { question };
  if ($("mode").value) body.mode = $("mode").value;
  if (turns.length) body.history = turns.slice(-20).map((t) => t.question);
  // The LLM's words appear as they come, marked as a draft; the checked answer replaces them.
  const { ok, status, data } = await askStream(body, (draft) => {
    $("result").hidden = false;
    $("understood").hidden = true;
    $("answer").className = "answer draft";
    $("answer").textContent = draft;
    $("answer-meta").textContent = "核对出处中… checking the sources…";
    $("citations").replaceChildren();
  });
  button.disabled = false;
  if (ok) {
    showMessage("");
    renderConversation();
    renderAnswer(data);
    turns.push({ question: data.question, answer: data.answerable ? data.answer : "没有找到答案 No answer" });
    $("question").value = "";
    return;
  }
  $("result").hidden = true;
  if (status === 401) {
    needKey();
  } else if (status === 503) {
    showMessage(`服务尚未就绪。Service not ready: ${data.detail}`, true);
    checkReady();
  } else {
    showMessage(`无法回答：${data.detail || `HTTP ${status}`}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", ask);
  $("new-conversation").addEventListener("click", newConversation);
  $("article-close").addEventListener("click", () => {
    $("article").hidden = true;
  });
  if (apiKey()) $("api-key").value = apiKey();
  checkReady();
  $("question").focus();
});
