// The Switchboard agent console. Plain JavaScript, no build step: it reads and acts
// through /api/v1 with the session cookie (and the session's CSRF token on every
// change), and follows /api/v1/stream for live updates. The DOM is built with
// textContent only, never HTML strings: every text shown comes from customers.
"use strict";

const app = {
  session: null,      // {agent, csrf_token}
  teams: [],
  view: { queue: "mine", status: "open", priority: "", label: "", channel: "", sla: "", sort: "newest" },
  openId: null,       // the conversation shown
  detail: null,
  stream: null,
  refreshTimer: null,
  ticket: 0,          // the view on show (see route)
  reportRange: "7d",  // the supervisor's reports' range, kept while they look elsewhere
};

// ---- DOM helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function $(selector, root) { return (root || document).querySelector(selector); }

function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function when(timestamp) {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  return date.toLocaleString();
}

function ago(timestamp) {
  if (!timestamp) return "";
  const seconds = Math.round((Date.now() - new Date(timestamp).getTime()) / 1000);
  return span(seconds) + " ago";
}

function span(seconds) {
  const abs = Math.abs(seconds);
  if (abs < 60) return abs + "s";
  if (abs < 3600) return Math.floor(abs / 60) + "m";
  if (abs < 86400) return Math.floor(abs / 3600) + "h " + Math.floor((abs % 3600) / 60) + "m";
  return Math.floor(abs / 86400) + "d " + Math.floor((abs % 86400) / 3600) + "h";
}

// ---- API ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && app.session) headers["X-CSRF-Token"] = app.session.csrf_token;
  const response = await fetch("/api/v1" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    if (response.status === 401 && app.session && path !== "/session") signedOut();
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

function showError(where, error) {
  const box = typeof where === "string" ? $(where) : where;
  if (!box) return;
  if (error) replace(box, h("span", { class: "error-code" }, error.code || "error"), " " + error.message);
  else replace(box);
  box.hidden = !error;
}

// ---- Routing -------------------------------------------------------------------

async function start() {
  const path = location.pathname;
  if (path === "/setup") return renderSetup();
  try {
    app.session = await api("GET", "/session");
  } catch (error) {
    if (path !== "/sign-in") { location.replace("/sign-in"); return; }
    return renderSignIn();
  }
  if (path !== "/") { location.replace("/"); return; }
  app.teams = (await api("GET", "/teams")).teams;
  app.labels = (await api("GET", "/labels")).labels.filter((label) => label.in_catalogue);
  renderDesk();
  openStream();
  window.addEventListener("hashchange", route);
  route();
  setInterval(tickClocks, 1000);
}

// The pane shows what the address says: `#/c/{id}` a conversation, `#/search?q=…` search
// results, `#/contacts[?q=…]` people found, `#/contacts/{id}` a person's page,
// `#/mentions` the notes that mention the agent, `#/supervisor` the supervisors' view,
// `#/replies` saved replies (`#/replies/new`, `#/replies/{id}` one's form), and for
// admins `#/admin/agents` (`#/admin/agents/{id}` one agent) and `#/admin/audit`. Each view takes a ticket: an answer that comes
// back after the agent went elsewhere is dropped rather than drawn over the new view.
function route() {
  const hash = location.hash;
  const ticket = ++app.ticket;
  const query = (text) => new URLSearchParams(text || "");
  const conversation = hash.match(/^#\/c\/(\d+)$/);
  const search = hash.match(/^#\/search(?:\?(.*))?$/);
  const contact = hash.match(/^#\/contacts\/(\d+)$/);
  const contacts = hash.match(/^#\/contacts(?:\?(.*))?$/);
  const replies = hash === "#/replies";
  const reply = hash.match(/^#\/replies\/(\d+|new)$/);
  const agents = hash === "#/admin/agents";
  const agent = hash.match(/^#\/admin\/agents\/(\d+)$/);
  const audit = hash === "#/admin/audit";
  if (!conversation) app.openId = null;
  const input = $("#search-input");
  if (input && !search) input.value = "";
  if (hash === "#/supervisor") { renderSupervisor(); return; }
  if (hash === "#/mentions") { renderMentions(); refreshList(); return; }
  document.body.classList.toggle("reading",
    !!(conversation || search || contact || contacts || replies || reply || agents || agent || audit));
  if (conversation) openConversation(Number(conversation[1]));
  else if (search) renderSearch(query(search[1]), ticket);
  else if (contact) renderContact(Number(contact[1]), ticket);
  else if (contacts) renderContacts(query(contacts[1]), ticket);
  else if (replies) renderReplies(ticket);
  else if (reply) renderReply(reply[1] === "new" ? null : Number(reply[1]), ticket);
  else if (agents) renderAgents(ticket);
  else if (agent) renderAgent(Number(agent[1]), ticket);
  else if (audit) renderAudit(ticket);
  else replace(freshPane(), h("p", { class: "empty" }, "Choose a conversation."));
  refreshList();
}

// Shows `hash`; the same address again (a search repeated) shows it anew.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// Whether `ticket` is still the view on show.
function current(ticket) { return ticket === app.ticket; }

// The pane, emptied of a conversation's state, for another view.
function freshPane() {
  const pane = $("#conversation");
  delete pane.dataset.id;
  return pane;
}

function signedOut() {
  app.session = null;
  if (app.stream) app.stream.close();
  location.replace("/sign-in");
}

// ---- Sign-in and first password -------------------------------------------------

function renderSignIn() {
  const error = h("p", { class: "error", id: "sign-in-error", role: "alert", hidden: true });
  const form = h("form", { class: "card", id: "sign-in", onsubmit: async (event) => {
    event.preventDefault();
    const body = { name: form.elements.name.value, password: form.elements.password.value };
    try {
      await api("POST", "/session", body);
      location.replace("/");
    } catch (problem) { showError(error, problem); }
  } },
    h("h1", {}, "Sign in to Switchboard"),
    h("label", {}, "Name", h("input", { name: "name", autocomplete: "username", required: true, autofocus: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    h("p", { class: "hint" }, "First time here? Open the sign-in link your admin gave you."));
  replace($("#app"), h("main", { id: "main", class: "centered" }, form));
}

function renderSetup() {
  const token = location.hash.slice(1);
  // The token leaves the address bar (and the history) at once.
  history.replaceState(null, "", "/setup");
  const error = h("p", { class: "error", id: "setup-error", role: "alert", hidden: !!token },
    token ? "" : "This link has no token; ask an admin for a new sign-in link.");
  const form = h("form", { class: "card", id: "setup", onsubmit: async (event) => {
    event.preventDefault();
    const password = form.elements.password.value;
    if (password !== form.elements.confirm.value) {
      showError(error, { code: "mismatch", message: "the two passwords differ" });
      return;
    }
    try {
      await api("POST", "/session/setup", { token, password });
      location.replace("/");
    } catch (problem) { showError(error, problem); }
  } },
    h("h1", {}, "Choose your password"),
    h("p", { class: "hint" }, "At least 10 characters. The link works once."),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 10, autofocus: true })),
    h("label", {}, "Again", h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true })),
    error,
    h("button", { type: "submit", class: "primary" }, "Set password and sign in"));
  replace($("#app"), h("main", { id: "main", class: "centered" }, form));
}

// ---- The desk -------------------------------------------------------------------------

function supervising() { return app.session && app.session.agent.role !== "agent"; }

function administering() { return app.session && app.session.agent.role === "admin"; }

function renderDesk() {
  const agent = app.session.agent;
  const available = h("button", { id: "availability", class: agent.available ? "on" : "", "aria-pressed": String(agent.available),
    onclick: async () => {
      try {
        const updated = await api("PUT", "/agents/me/availability", { available: !app.session.agent.available });
        app.session.agent.available = updated.available;
        available.className = updated.available ? "on" : "";
        available.setAttribute("aria-pressed", String(updated.available));
        available.textContent = updated.available ? "Available" : "Away";
      } catch (error) { alert(error.message); }
    } }, agent.available ? "Available" : "Away");
  const header = h("header", { class: "top" },
    h("a", { href: "#/", class: "brand" }, "Switchboard"),
    h("a", { href: "#/contacts", id: "contacts-link" }, "Contacts"),
    h("a", { href: "#/replies", id: "replies-link" }, "Replies"),
    supervising() ? h("a", { href: "#/supervisor", id: "supervisor-link" }, "Supervisor") : null,
    administering() ? h("a", { href: "#/admin/agents", id: "admin-link" }, "Agents") : null,
    h("a", { href: "#/mentions", id: "mentions-link", title: "Notes that mention you" }, "@ ",
      h("span", { class: "count", id: "count-mentions" }, "·")),
    searchBox(),
    h("span", { class: "grow" }),
    h("span", { id: "whoami", dir: "auto" }, agent.name, agent.teams.length ? " · " + agent.teams.join(", ") : ""),
    available,
    h("button", { id: "sign-out", onclick: async () => {
      try { await api("DELETE", "/session"); } finally { signedOut(); }
    } }, "Sign out"));

  const tab = (key, label) => h("button", { role: "tab", class: "tab", "data-queue": key, id: "tab-" + key,
    "aria-selected": String(app.view.queue === key),
    onclick: () => { app.view.queue = key; markTabs(); refreshList(); } },
    label, " ", h("span", { class: "count", id: "count-" + key }, "·"));
  const tabs = h("nav", { role: "tablist", class: "tabs", "aria-label": "Queues" },
    tab("mine", "Mine"), tab("unassigned", "Unassigned"), tab("team", agent.teams.length > 1 ? "My teams" : "My team"),
    supervising() ? tab("all", "All") : null);

  const select = (name, label, options) => h("label", { class: "filter" }, label,
    h("select", { name, id: "filter-" + name, onchange: (event) => { app.view[name] = event.target.value; refreshList(); } },
      options.map(([value, text]) => h("option", { value, selected: app.view[name] === value }, text))));
  const filters = h("div", { class: "filters" },
    select("status", "Status", [["open", "Open"], ["pending", "Pending"], ["open,pending,snoozed", "Unresolved"], ["resolved,closed", "Resolved"], ["all", "All"]]),
    select("priority", "Priority", [["", "Any"], ["urgent", "Urgent"], ["high", "High"], ["normal", "Normal"], ["low", "Low"]]),
    select("channel", "Channel", [["", "Any"], ["email", "Email"], ["telegram", "Telegram"], ["webhook", "Webhook"]]),
    select("sla", "SLA", [["", "Any"], ["at_risk", "At risk"], ["breached", "Breached"]]),
    select("sort", "Order", [["newest", "Newest activity"], ["oldest", "Oldest waiting"]]),
    h("label", { class: "filter" }, "Label", labelOptions(), h("input", { name: "label", id: "filter-label", size: 10, list: "label-catalogue",
      onchange: (event) => { app.view.label = event.target.value.trim(); refreshList(); } })));

  const list = h("section", { class: "list", "aria-label": "Conversations" }, tabs, filters,
    h("ul", { id: "conversations", class: "conversations" }),
    h("p", { id: "list-error", class: "error", hidden: true }));
  const pane = h("section", { id: "conversation", class: "pane", "aria-label": "Conversation" });
  replace($("#app"), header, h("main", { id: "main", class: "desk" }, list, pane));
}

function markTabs() {
  document.querySelectorAll(".tab").forEach((tab) =>
    tab.setAttribute("aria-selected", String(tab.dataset.queue === app.view.queue)));
}

function listQuery() {
  const params = new URLSearchParams();
  const agent = app.session.agent;
  if (app.view.queue === "mine") params.set("assignee", "me");
  if (app.view.queue === "unassigned") params.set("assignee", "none");
  if (app.view.queue === "team") {
    if (!agent.teams.length) return null;
    params.set("team", "mine");
  }
  if (app.view.queue === "unassigned" && !supervising() && agent.teams.length) params.set("team", "mine");
  for (const key of ["status", "priority", "label", "channel", "sla", "sort"]) {
    if (app.view[key]) params.set(key, app.view[key]);
  }
  params.set("limit", "50");
  return params.toString();
}

async function refreshList() {
  const list = $("#conversations");
  if (!list) return;
  const query = listQuery();
  try {
    const [page, counts] = await Promise.all([
      query === null ? { conversations: [] } : api("GET", "/conversations?" + query),
      api("GET", "/queues"),
    ]);
    for (const [key, value] of Object.entries(counts)) {
      const count = $("#count-" + key);
      if (count) count.textContent = value;
    }
    replace(list, page.conversations.length ? page.conversations.map(row) : h("li", { class: "empty" }, "Nothing here."));
    showError("#list-error", null);
  } catch (error) { showError("#list-error", error); }
}

function row(conversation) {
  const last = conversation.last_message;
  const breached = conversation.sla_breached_at;
  return h("li", { class: "row" + (conversation.id === app.openId ? " current" : ""), "data-id": conversation.id },
    h("a", { href: "#/c/" + conversation.id, class: "conversation-link" },
      h("span", { class: "line" },
        h("span", { class: "badge channel-" + conversation.channel }, conversation.channel),
        h("strong", { dir: "auto", class: "who" }, conversation.contact.name || conversation.contact.email || conversation.contact.external_id),
        h("span", { class: "grow" }),
        h("span", { class: "badge priority-" + conversation.priority }, conversation.priority),
        breached ? h("span", { class: "badge breached" }, "SLA") : null),
      conversation.labels.length ? h("span", { class: "line" }, conversation.labels.map((label) => labelChip(label))) : null,
      h("span", { class: "subject", dir: "auto" }, conversation.subject || (last ? last.text : "")),
      h("span", { class: "meta" }, conversation.reference, " · ", conversation.status,
        conversation.team ? " · " + conversation.team.name : "",
        conversation.assignee ? " · " + conversation.assignee.name : " · unassigned",
        " · ", ago(conversation.last_activity_at))));
}

// ---- A conversation ----------------------------------------------------------------

async function openConversation(id) {
  app.openId = id;
  document.querySelectorAll(".row").forEach((r) => r.classList.toggle("current", Number(r.dataset.id) === id));
  try {
    const detail = await api("GET", "/conversations/" + id);
    if (app.openId !== id) return;
    app.detail = detail;
    renderConversation(app.detail);
  } catch (error) {
    if (app.openId !== id) return;
    replace(freshPane(), h("p", { class: "error" }, error.message));
  }
}

async function reloadOpen() {
  const id = app.openId;
  if (!id) return;
  try {
    const detail = await api("GET", "/conversations/" + id);
    // The agent went elsewhere while it loaded: the answer is not drawn over that view.
    if (app.openId !== id) return;
    app.detail = detail;
    renderConversation(app.detail, true);
  } catch (error) {
    if (error.status === 404 && app.openId === id) replace($("#conversation"), h("p", { class: "empty" }, "This conversation is no longer yours to see."));
  }
}

function renderConversation(detail, refresh) {
  const pane = $("#conversation");
  // A refresh (the stream said something changed) redraws what shows the conversation
  // and leaves alone what the agent is typing into: the composer and the label field.
  const same = refresh && pane.dataset.id === String(detail.id) && $("#composer");
  if (!same) {
    pane.dataset.id = String(detail.id);
    replace(pane,
      h("div", { class: "pane-head", id: "conversation-head" }),
      h("div", { class: "labels", id: "labels" }, h("span", { id: "label-chips" }), labelInput(detail)),
      h("div", { id: "escalation-box" }),
      h("div", { id: "actions-box" }),
      h("div", { class: "columns" },
        h("div", { class: "thread", id: "thread" }),
        h("aside", { class: "side" },
          h("h3", {}, "SLA"), h("div", { id: "clocks" }),
          h("h3", {}, "Contact"), h("div", { id: "contact" }),
          h("h3", {}, "Earlier conversations"),
          h("ul", { id: "earlier", class: "earlier" }))),
      composer(detail));
    loadEarlier(detail.contact);
  }
  const escalation = detail.escalation;
  const contact = detail.contact;
  replace($("#conversation-head"),
    h("a", { href: "#/", class: "back" }, "← Back"),
    h("h2", { dir: "auto", id: "conversation-subject" }, detail.subject || contact.name || detail.reference),
    h("p", { class: "meta", id: "conversation-meta" },
      h("span", { id: "conversation-reference" }, detail.reference), " · ",
      h("span", { id: "conversation-status", class: "status-" + detail.status }, detail.status), " · ",
      h("span", { class: "badge priority-" + detail.priority }, detail.priority), " · ",
      h("span", { id: "conversation-team" }, detail.team ? detail.team.name + " (L" + detail.tier + ")" : "no team"), " · ",
      h("span", { id: "conversation-assignee" }, detail.assignee ? detail.assignee.name : "unassigned")));
  replace($("#label-chips"), labelChips(detail));
  replace($("#escalation-box"), escalation ? h("aside", { class: "escalation", id: "escalation-summary", role: "note" },
    h("strong", {}, escalation.kind === "transfer" ? "Transferred" : "Escalated",
      escalation.from && escalation.from.team ? " from " + escalation.from.team : "",
      " to ", escalation.to.name, escalation.kind === "transfer" ? "" : " (" + escalation.kind + ")"),
    h("p", { dir: "auto", class: "summary" }, escalation.summary),
    escalation.reason ? h("p", { class: "hint", dir: "auto" }, "Reason: ", escalation.reason) : null) : null);
  replace($("#actions-box"), actions(detail));
  const thread = $("#thread");
  const atBottom = !same || thread.scrollTop + thread.clientHeight >= thread.scrollHeight - 20;
  replace(thread, timeline(detail));
  if (atBottom) thread.scrollTop = thread.scrollHeight;
  replace($("#clocks"), clocks(detail.sla));
  replace($("#contact"),
    h("p", {}, h("a", { href: "#/contacts/" + contact.id, id: "contact-link", dir: "auto" }, contact.name || "(no name)")),
    h("p", { class: "meta" }, detail.channel, " · ", contact.external_id, contact.email ? " · " + contact.email : ""),
    contact.language ? h("p", { class: "meta" }, "Language: ", contact.language) : null,
    contact.unreachable ? h("p", { class: "error" }, "Unreachable: ", contact.unreachable) : null);
  syncReplyWindow(detail);
  tickClocks();
}

async function loadEarlier(contact) {
  // Conversations of this contact the agent may see, through the same list the API has.
  const list = $("#earlier");
  try {
    const page = await api("GET", "/conversations?status=all&limit=11&contact=" + contact.id);
    const earlier = page.conversations.filter((c) => c.id !== app.openId).slice(0, 10);
    replace(list, earlier.length ? earlier.map((c) => h("li", {}, h("a", { href: "#/c/" + c.id }, c.reference, " · ", c.status, " · ", when(c.created_at))))
      : h("li", { class: "meta" }, "None."));
  } catch (error) { replace(list, h("li", { class: "error" }, error.message)); }
}

function timeline(detail) {
  const entries = [
    ...detail.messages.map((message) => ({ at: message.created_at, message })),
    // A channel's report shows on its message (sent · read), not as a line of its own.
    ...detail.events.filter((event) => event.kind !== "delivery.reported").map((event) => ({ at: event.created_at, event })),
  ].sort((a, b) => new Date(a.at) - new Date(b.at));
  return entries.map((entry) => entry.message ? messageView(entry.message) : eventView(entry.event));
}

function messageView(message) {
  const kind = message.kind === "note" ? "note" : message.direction;
  const delivery = message.delivery;
  return h("article", { class: "message " + kind, "data-message-id": message.id, "data-kind": message.kind },
    h("header", {},
      h("strong", { dir: "auto" }, message.author.name || message.author.kind),
      message.kind === "note" ? h("span", { class: "badge note-badge" }, "internal note") : null,
      message.kind === "status_update" ? h("span", { class: "badge" }, "automatic") : null,
      h("time", { datetime: message.created_at, title: when(message.created_at) }, ago(message.created_at))),
    h("p", { dir: "auto", class: "text" }, message.text),
    message.attachments.length ? h("ul", { class: "attachments" }, message.attachments.map((file) =>
      h("li", {}, h("a", { href: "/api/v1/attachments/" + file.id, download: file.filename, dir: "auto" }, file.filename),
        " ", h("span", { class: "meta" }, Math.ceil(file.size / 1024) + " KiB")))) : null,
    // What the channel reported (WhatsApp: delivered, read) after the send.
    delivery ? h("p", { class: "meta delivery delivery-" + delivery.status }, delivery.status,
      delivery.channel_state && delivery.channel_state !== delivery.status ? " · " + delivery.channel_state : "",
      delivery.last_error ? ": " + delivery.last_error : "") : null);
}

function eventView(event) {
  const data = event.data || {};
  const who = event.actor && event.actor.name ? event.actor.name : event.actor.kind;
  let text;
  switch (event.kind) {
    case "conversation.created": text = "Opened on " + data.inbox; break;
    case "conversation.routed": text = "Routed to " + data.team + (data.rule ? " by rule " + data.rule : " (default)"); break;
    case "conversation.assigned": text = data.to ? "Assigned" + (data.reason ? " (" + data.reason + ")" : "") : "Unassigned"; break;
    case "conversation.escalated": text = "Escalated to " + (data.to && data.to.name) + ": " + data.summary; break;
    case "conversation.transferred": text = "Moved from " + data.from + " to " + data.to; break;
    case "agent.mentioned": text = "Mentioned @" + data.agent_name; break;
    case "conversation.status_changed": text = "Status " + data.from + " → " + data.to; break;
    case "conversation.priority_changed": text = "Priority " + data.from + " → " + data.to; break;
    case "conversation.labels_changed": text = "Labels" + (data.added.length ? " +" + data.added.join(", +") : "") +
      (data.removed.length ? " −" + data.removed.join(", −") : ""); break;
    case "sla.warning": text = "SLA warning: " + data.clock + " due " + when(data.due_at); break;
    case "sla.breached": text = "SLA breached: " + data.clock + " (" + data.target + ")"; break;
    case "delivery.skipped": text = "Not sent: " + data.reason; break;
    default: text = event.kind;
  }
  return h("p", { class: "event " + event.kind.replace(/\./g, "-"), "data-event": event.kind },
    h("span", { dir: "auto" }, text), " · ", who, " · ",
    h("time", { datetime: event.created_at, title: when(event.created_at) }, ago(event.created_at)));
}

function clocks(sla) {
  if (!sla.length) return h("p", { class: "meta" }, "No clocks.");
  return h("ul", { class: "clocks" }, sla.map((clock) => h("li", { class: "clock clock-" + clock.state },
    h("span", {}, clock.kind.replace(/_/g, " ")), " ",
    clock.breached_at ? h("span", { class: "badge breached" }, "breached") :
      clock.state === "running" && clock.due_at ? h("span", { class: "countdown", "data-due": clock.due_at }, "") :
        h("span", { class: "meta" }, clock.state))));
}

function tickClocks() {
  document.querySelectorAll(".countdown").forEach((node) => {
    const left = Math.round((new Date(node.dataset.due).getTime() - Date.now()) / 1000);
    node.textContent = left >= 0 ? span(left) + " left" : span(left) + " over";
    node.classList.toggle("over", left < 0);
  });
}

function actions(detail) {
  const error = h("p", { class: "error", id: "action-error", role: "alert", hidden: true });
  const act = (label, id, change) => h("button", { id, onclick: async () => {
    try {
      await api("PATCH", "/conversations/" + detail.id, change);
      showError(error, null);
      await reloadOpen();
      refreshList();
    } catch (problem) { showError(error, problem); }
  } }, label);
  const resolved = detail.status === "resolved" || detail.status === "closed";
  const mine = detail.assignee && detail.assignee.id === app.session.agent.id;
  return h("div", { class: "actions", role: "toolbar", "aria-label": "Actions" },
    mine ? null : act("Take", "action-take", { assignee: "me" }),
    supervising() ? assignPicker(detail, error) : null,
    h("button", { id: "action-escalate", onclick: () => escalateDialog(detail) }, "Escalate"),
    h("label", { class: "inline" }, "Priority ",
      h("select", { id: "action-priority", onchange: async (event) => {
        try {
          await api("PATCH", "/conversations/" + detail.id, { priority: event.target.value });
          await reloadOpen();
          refreshList();
        } catch (problem) { showError(error, problem); }
      } }, ["low", "normal", "high", "urgent"].map((p) => h("option", { value: p, selected: detail.priority === p }, p)))),
    resolved ? act("Reopen", "action-reopen", { status: "open" }) : [
      detail.status === "pending" ? null : act("Pending", "action-pending", { status: "pending" }),
      act("Resolve", "action-resolve", { status: "resolved" }),
    ],
    error);
}

async function changeLabels(id, body) {
  try {
    await api("PATCH", "/conversations/" + id, { labels: body });
    await reloadOpen();
    refreshList();
  } catch (problem) { showError("#action-error", problem); }
}

// A label as a chip in its catalogue colour, its description as the tooltip.
function labelChip(name, ...children) {
  const known = (app.labels || []).find((label) => label.name === name);
  const chip = h("span", { class: "label", "data-label": name, title: known && known.description || "" }, name, ...children);
  // Set through the CSSOM: the page's Content-Security-Policy forbids style attributes.
  if (known && known.color) chip.style.setProperty("--label-color", known.color);
  return chip;
}

// The catalogue's names, offered by every label field.
function labelOptions() {
  return h("datalist", { id: "label-catalogue" }, (app.labels || []).map((label) => h("option", { value: label.name })));
}

function labelChips(detail) {
  return detail.labels.map((label) => labelChip(label,
    h("button", { class: "remove-label", "aria-label": "Remove label " + label,
      onclick: () => changeLabels(detail.id, { remove: [label] }) }, "×")));
}

function labelInput(detail) {
  const input = h("input", { id: "label-add", size: 10, placeholder: "+ label", "aria-label": "Add a label", list: "label-catalogue",
    onkeydown: (event) => {
      if (event.key === "Enter" && input.value.trim()) {
        event.preventDefault();
        const label = input.value.trim();
        input.value = "";
        changeLabels(detail.id, { add: [label] });
      }
    } });
  return input;
}

function assignPicker(detail, error) {
  const select = h("select", { id: "action-assign", "aria-label": "Assign to" }, h("option", { value: "" }, "Assign to…"));
  api("GET", "/agents").then((data) => {
    for (const agent of data.agents.filter((a) => a.active)) {
      select.append(h("option", { value: agent.id }, agent.name + (agent.teams.length ? " (" + agent.teams.join(", ") + ")" : "")));
    }
  }).catch(() => {});
  select.addEventListener("change", async () => {
    if (!select.value) return;
    try {
      await api("PATCH", "/conversations/" + detail.id, { assignee: Number(select.value) });
      await reloadOpen();
      refreshList();
    } catch (problem) { showError(error, problem); }
  });
  return select;
}

function escalateDialog(detail) {
  const error = h("p", { class: "error", id: "escalate-error", role: "alert", hidden: true });
  const target = h("select", { id: "escalate-to", name: "to" },
    h("option", { value: "next" }, "Next tier"),
    app.teams.filter((team) => !detail.team || team.key !== detail.team.key)
      .map((team) => h("option", { value: "team:" + team.key }, team.name + " (L" + team.tier + ")")));
  const summary = h("textarea", { id: "escalate-summary", name: "summary", rows: 4, dir: "auto",
    placeholder: "What the next team needs to know first" });
  const reason = h("input", { id: "escalate-reason", name: "reason", dir: "auto" });
  const dialog = h("dialog", { id: "escalate-dialog", "aria-labelledby": "escalate-title" },
    h("form", { method: "dialog", onsubmit: async (event) => {
      event.preventDefault();
      const to = target.value === "next" ? { tier: "next" } : { team: target.value.slice(5) };
      const body = { to };
      if (summary.value.trim()) body.summary = summary.value;
      if (reason.value.trim()) body.reason = reason.value;
      try {
        await api("POST", "/conversations/" + detail.id + "/escalate", body);
        dialog.close();
        await reloadOpen();
        refreshList();
      } catch (problem) { showError(error, problem); }
    } },
      h("h2", { id: "escalate-title" }, "Escalate"),
      h("label", {}, "To", target),
      h("label", {}, "Summary (required)", summary),
      h("label", {}, "Reason", reason),
      error,
      h("div", { class: "row-buttons" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
        h("button", { type: "submit", class: "primary", id: "escalate-submit" }, "Escalate"))));
  // Escape closes it too; either way it leaves the page.
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  summary.focus();
}

function composer(detail) {
  const error = h("p", { class: "error", id: "composer-error", role: "alert", hidden: true });
  const text = h("textarea", { id: "composer-text", rows: 4, dir: "auto", "aria-label": "Message",
    placeholder: "Reply to the customer (Ctrl+Enter sends, / for saved replies)",
    role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": "saved-replies-menu" });
  const note = h("input", { type: "checkbox", id: "composer-note" });
  const files = h("input", { type: "file", id: "composer-files", multiple: true });
  const saved = savedReplyMenu(detail, text, error);
  const send = async () => {
    if (!text.value.trim()) { showError(error, { code: "empty", message: "write something first" }); return; }
    const attachments = await Promise.all([...files.files].map(readFile));
    const body = { text: text.value, private: note.checked };
    // The agent's edit of an inserted saved reply is what is sent; the reply records
    // which one it came from.
    if (saved.used()) body.saved_reply = saved.used();
    if (attachments.length) body.attachments = attachments;
    try {
      await api("POST", "/conversations/" + detail.id + "/messages", body);
      text.value = "";
      files.value = "";
      saved.forget();
      showError(error, null);
      await reloadOpen();
      refreshList();
    } catch (problem) { showError(error, problem); }
  };
  text.addEventListener("keydown", (event) => {
    if (saved.keydown(event)) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(); }
  });
  const noting = () => {
    form.classList.toggle("noting", note.checked);
    text.placeholder = note.checked ? "Internal note: never sent to the customer" : "Reply to the customer (Ctrl+Enter sends, / for saved replies)";
  };
  note.addEventListener("change", (event) => {
    // The agent's own choice stands over the reply window's (`syncReplyWindow`).
    if (event.isTrusted) delete note.dataset.auto;
    noting();
  });
  const form = h("form", { class: "composer", id: "composer",
    onsubmit: (event) => { event.preventDefault(); send(); } },
    h("div", { class: "composer-text" }, text, saved.menu),
    h("div", { class: "composer-bar" },
      h("label", { class: "inline" }, note, " Internal note"),
      h("label", { class: "inline" }, "Files ", files),
      h("span", { class: "grow" }),
      h("button", { type: "submit", class: "primary", id: "composer-send" }, "Send")),
    h("div", { id: "reply-window-box" }),
    error);
  return form;
}

// Past the channel's reply window a reply would be refused: the composer turns to a note
// and says why, and turns back when the customer writes again, unless the agent chose
// themselves. Runs on every draw, the stream's refreshes included.
function syncReplyWindow(detail) {
  const box = $("#reply-window-box");
  const note = $("#composer-note");
  if (!box || !note) return;
  replace(box, replyWindow(detail));
  const closed = Boolean(detail.reply_window && !detail.reply_window.open);
  if (closed && !note.checked) {
    note.checked = true;
    note.dataset.auto = "yes";
    note.dispatchEvent(new Event("change"));
  } else if (!closed && note.dataset.auto === "yes") {
    note.checked = false;
    delete note.dataset.auto;
    note.dispatchEvent(new Event("change"));
  }
}

// How long the agent may still reply on a channel that carries free-form replies only
// for a while after the customer wrote (WhatsApp).
function replyWindow(detail) {
  const reply = detail.reply_window;
  if (!reply) return null;
  const closes = reply.closes_at ? new Date(reply.closes_at).getTime() : null;
  const text = reply.open && closes
    ? "Reply window open: " + span(Math.max(0, Math.floor((closes - Date.now()) / 1000))) + " left to reply on " + detail.channel + "."
    : "Reply window closed: " + detail.channel + " takes no reply until the customer writes again. Notes still work.";
  return h("p", { class: "meta reply-window" + (reply.open ? "" : " closed"), id: "reply-window",
    title: reply.closes_at ? "Closes " + when(reply.closes_at) : "" }, text);
}

// ---- Saved replies -------------------------------------------------------------------

// The `/shortcut` being typed just before the caret: at the start or after a space.
function slashWord(text) {
  const before = text.value.slice(0, text.selectionStart);
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(before);
  return match ? { start: before.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
}

// The same order as GET /api/v1/saved-replies?q=: a shortcut that starts with the
// text, then one that holds it, then a title that holds it.
function rankReplies(replies, query) {
  const rank = (reply) => !query || reply.shortcut.startsWith(query) ? 0
    : reply.shortcut.includes(query) ? 1
    : reply.title.toLowerCase().includes(query) ? 2 : 3;
  return replies.map((reply) => [rank(reply), reply]).filter(([r]) => r < 3)
    .sort((a, b) => a[0] - b[0] || a[1].shortcut.localeCompare(b[1].shortcut)
      || (a[1].scope === "team") - (b[1].scope === "team"))
    .map(([, reply]) => reply).slice(0, 8);
}

// Typing `/` and a shortcut in the composer offers the matching saved replies; arrows
// move, Enter or Tab chooses, Escape closes. The chosen one is filled for the open
// conversation by the daemon (the same text a send would make) and replaces the
// `/shortcut`, for the agent to edit before sending.
function savedReplyMenu(detail, text, error) {
  const menu = h("ul", { class: "saved-replies", id: "saved-replies-menu", role: "listbox",
    "aria-label": "Saved replies", hidden: true });
  let replies = null;     // fetched once per composer, when first wanted
  let shown = [];
  let active = 0;
  let word = null;
  let used = null;        // the saved reply inserted, until the text is sent
  const close = () => {
    menu.hidden = true;
    shown = [];
    text.setAttribute("aria-expanded", "false");
    text.removeAttribute("aria-activedescendant");
  };
  const highlight = () => {
    [...menu.children].forEach((item, index) => item.setAttribute("aria-selected", String(index === active)));
    if (shown.length) text.setAttribute("aria-activedescendant", "saved-reply-" + shown[active].id);
  };
  const choose = async (reply) => {
    close();
    const at = word;
    try {
      const filled = await api("GET", "/saved-replies/" + reply.id + "/render?conversation=" + detail.id);
      const before = text.value.slice(0, at.start);
      const after = text.value.slice(text.selectionStart);
      text.value = before + filled.text + after;
      const caret = before.length + filled.text.length;
      text.setSelectionRange(caret, caret);
      used = reply.id;
      if (filled.missing.length) {
        showError(error, { code: "check", message: "nothing to fill in for " + filled.missing.join(", ") + "; check the text" });
      } else showError(error, null);
      text.focus();
    } catch (problem) { showError(error, problem); }
  };
  const update = async () => {
    if (!text.value.trim()) used = null;
    word = slashWord(text);
    if (!word) { close(); return; }
    if (replies === null) {
      replies = [];
      try { replies = (await api("GET", "/saved-replies")).saved_replies; } catch (problem) { showError(error, problem); }
      word = slashWord(text);
      if (!word) { close(); return; }
    }
    shown = rankReplies(replies, word.query);
    if (!shown.length) { close(); return; }
    active = 0;
    replace(menu, shown.map((reply) => h("li", { role: "option", id: "saved-reply-" + reply.id,
      class: "saved-reply", "data-shortcut": reply.shortcut,
      // Keeps the focus in the composer, where the keys are read.
      onmousedown: (event) => { event.preventDefault(); choose(reply); } },
      h("span", { class: "shortcut" }, "/" + reply.shortcut), " ",
      h("span", { class: "title" }, reply.title), " ",
      reply.scope === "team" ? h("span", { class: "badge" }, reply.team) : null)));
    menu.hidden = false;
    text.setAttribute("aria-expanded", "true");
    highlight();
  };
  text.addEventListener("input", update);
  text.addEventListener("blur", close);
  return {
    menu,
    used: () => used,
    forget: () => { used = null; },
    // Handles the keys that move or choose while the menu is open; says whether it did.
    keydown(event) {
      if (menu.hidden || !shown.length) return false;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const step = event.key === "ArrowDown" ? 1 : shown.length - 1;
        active = (active + step) % shown.length;
        highlight();
      } else if ((event.key === "Enter" && !event.ctrlKey && !event.metaKey) || event.key === "Tab") {
        choose(shown[active]);
      } else if (event.key === "Escape") {
        close();
      } else return false;
      event.preventDefault();
      return true;
    },
  };
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({
      filename: file.name,
      content_type: file.type || "application/octet-stream",
      data_base64: String(reader.result).split(",")[1] || "",
    });
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// ---- Search ----------------------------------------------------------------------------

// The header's search box: `/` anywhere but in a field puts the cursor in it, Enter
// shows the results (`#/search?q=…`, keeping the results' filters), Escape leaves it.
function searchBox() {
  const input = h("input", { type: "search", id: "search-input", name: "q", placeholder: "Search (/)",
    "aria-label": "Search conversations", autocomplete: "off", dir: "auto",
    onkeydown: (event) => { if (event.key === "Escape") { input.value = ""; input.blur(); } } });
  return h("form", { role: "search", class: "search-box", id: "search-form", onsubmit: (event) => {
    event.preventDefault();
    const params = location.hash.startsWith("#/search") ? searchParams() : new URLSearchParams();
    params.set("q", input.value.trim());
    go("#/search?" + params.toString());
  } }, input);
}

document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog")) return;
  const input = $("#search-input");
  if (!input) return;
  event.preventDefault();
  input.focus();
  input.select();
});

// The search's parameters in the address now.
function searchParams() {
  const match = location.hash.match(/^#\/search(?:\?(.*))?$/);
  return new URLSearchParams(match ? match[1] || "" : "");
}

// What GET /api/v1/search refuses as too short: no word of three characters or more
// (characters as the API counts them: Unicode scalar values).
function searchable(text) {
  return text.split(/\s+/).some((word) => [...word].length >= 3);
}

async function renderSearch(params, ticket) {
  const pane = freshPane();
  const q = (params.get("q") || "").trim();
  const input = $("#search-input");
  if (input && document.activeElement !== input) input.value = q;
  const filter = (name, label, options) => h("label", { class: "filter" }, label,
    h("select", { id: "search-" + name, name, onchange: (event) => {
      const next = searchParams();
      if (event.target.value) next.set(name, event.target.value); else next.delete(name);
      location.hash = "#/search?" + next.toString();
    } }, options.map(([value, text]) => h("option", { value, selected: (params.get(name) || "") === value }, text))));
  const message = h("p", { id: "search-message", class: "empty", role: "status" });
  const results = h("ol", { id: "search-results", class: "results" });
  replace(pane,
    h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"),
      h("h2", {}, "Search ", q ? h("q", { dir: "auto", id: "search-query" }, q) : null)),
    h("div", { class: "filters", id: "search-filters" },
      filter("status", "Status", [["", "All"], ["open", "Open"], ["pending", "Pending"], ["open,pending,snoozed", "Unresolved"], ["resolved,closed", "Resolved"]]),
      filter("priority", "Priority", [["", "Any"], ["urgent", "Urgent"], ["high", "High"], ["normal", "Normal"], ["low", "Low"]]),
      filter("channel", "Channel", [["", "Any"], ["email", "Email"], ["telegram", "Telegram"], ["webhook", "Webhook"]])),
    message, results);
  if (!q) { message.textContent = "Type words to find in messages, notes and subjects."; return; }
  if (!searchable(q)) {
    message.className = "error";
    message.textContent = "Type at least 3 characters: a search needs one word of three characters or more.";
    return;
  }
  message.textContent = "Searching…";
  const query = new URLSearchParams();
  for (const [key, value] of params) if (value) query.set(key, value);
  query.set("limit", "50");
  try {
    const page = await api("GET", "/search?" + query.toString());
    if (!current(ticket)) return;
    if (!page.results.length) { message.textContent = "No conversations match “" + q + "”."; return; }
    message.textContent = page.results.length + (page.results.length === 1 ? " conversation" : " conversations");
    replace(results, page.results.map(searchResult));
  } catch (error) {
    if (!current(ticket)) return;
    message.className = "error";
    replace(message, h("span", { class: "error-code" }, error.code), " " + error.message);
  }
}

function searchResult(result) {
  const c = result.conversation;
  return h("li", { class: "result", "data-id": c.id },
    h("a", { href: "#/c/" + c.id, class: "result-link" },
      h("span", { class: "line" },
        h("span", { class: "badge channel-" + c.channel }, c.channel),
        h("strong", { dir: "auto", class: "who" }, c.contact.name || "(no name)"),
        h("span", { class: "grow" }),
        h("span", { class: "badge priority-" + c.priority }, c.priority)),
      result.subject ? h("span", { class: "excerpt subject-excerpt", dir: "auto" }, marked(result.subject)) :
        c.subject ? h("span", { class: "subject", dir: "auto" }, c.subject) : null,
      result.matches.map((match) => h("span", { class: "excerpt " + (match.kind === "note" ? "note" : match.direction),
        "data-message-id": match.message_id },
        match.kind === "note" ? h("span", { class: "badge note-badge" }, "note") : null,
        match.kind === "note" ? " " : null,
        h("span", { dir: "auto" }, marked(match)))),
      h("span", { class: "meta" }, c.reference, " · ", c.status, c.team ? " · " + c.team : "",
        " · ", ago(c.last_activity_at))));
}

// An excerpt as text with its highlights in <mark>: the API's `[start, end)` ranges
// count Unicode scalar values, which is what iterating a string gives.
function marked(excerpt) {
  const chars = [...excerpt.excerpt];
  const ranges = excerpt.highlights
    .map(([start, end]) => [Math.max(0, start), Math.min(chars.length, end)])
    .filter(([start, end]) => start < end)
    .sort((a, b) => a[0] - b[0]);
  const parts = [];
  let at = 0;
  for (const [start, end] of ranges) {
    if (end <= at) continue;
    const from = Math.max(start, at);
    if (from > at) parts.push(chars.slice(at, from).join(""));
    parts.push(h("mark", {}, chars.slice(from, end).join("")));
    at = end;
  }
  if (at < chars.length) parts.push(chars.slice(at).join(""));
  return parts;
}

// ---- Contacts --------------------------------------------------------------------------

const KNOWN_FLAGS = ["vip", "influencer", "verified"];

function contactName(contact) { return contact.name || contact.email || "Contact #" + contact.id; }

function flagBadges(flags) {
  return flags.map((flag) => h("span", { class: "badge flag flag-" + flag, "data-flag": flag }, flag));
}

// `#/contacts?q=…`: people found by a part of their name, email, phone, Telegram username
// or a channel's id; no text lists the newest. "More" follows the API's cursor.
async function renderContacts(params, ticket) {
  const pane = freshPane();
  const q = (params.get("q") || "").trim();
  const input = h("input", { type: "search", id: "contact-search", name: "q", value: q, dir: "auto",
    placeholder: "Name, email, phone, @username or channel id", autocomplete: "off" });
  const message = h("p", { id: "contacts-message", class: "empty", role: "status" });
  const list = h("ul", { id: "contact-results", class: "results" });
  const more = h("button", { type: "button", id: "contacts-more", hidden: true }, "More");
  replace(pane,
    h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Contacts")),
    h("form", { role: "search", class: "contact-search", onsubmit: (event) => {
      event.preventDefault();
      const text = input.value.trim();
      go(text ? "#/contacts?" + new URLSearchParams({ q: text }).toString() : "#/contacts");
    } }, h("label", { for: "contact-search" }, "Find a person"), h("div", { class: "inline-form" }, input,
      h("button", { type: "submit", class: "primary", id: "contact-search-submit" }, "Find"))),
    message, list, more);
  if (q && [...q.replace(/^@/, "")].length < 3) {
    message.className = "error";
    message.textContent = "Type at least 3 characters to find a person.";
    return;
  }
  let cursor = null;
  const load = async () => {
    const query = new URLSearchParams({ limit: "25" });
    if (q) query.set("q", q);
    if (cursor) query.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await api("GET", "/contacts?" + query.toString());
      if (!current(ticket)) return;
      list.append(...page.contacts.map(contactRow));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      more.disabled = false;
      message.textContent = list.children.length ? "" : q ? "Nobody matches “" + q + "”." : "No contacts yet.";
    } catch (error) {
      if (!current(ticket)) return;
      message.className = "error";
      replace(message, h("span", { class: "error-code" }, error.code), " " + error.message);
    }
  };
  more.addEventListener("click", load);
  message.textContent = "Loading…";
  await load();
}

function contactRow(contact) {
  const phone = contact.attributes && contact.attributes.phone;
  return h("li", { class: "contact-row", "data-id": contact.id },
    h("a", { href: "#/contacts/" + contact.id, class: "contact-link" },
      h("span", { class: "line" }, h("strong", { dir: "auto" }, contactName(contact)), " ", flagBadges(contact.flags)),
      h("span", { class: "meta" },
        [contact.email, typeof phone === "string" ? phone : null].filter(Boolean).join(" · ")),
      h("span", { class: "line" }, contact.identities.map((identity) =>
        h("span", { class: "badge channel-" + identity.channel, title: identity.inbox }, identity.channel)))));
}

// `#/contacts/{id}`: the person, every way they reach the desk, their conversations (the
// ones the agent may read), a form for what agents correct, and the likely duplicates.
async function renderContact(id, ticket) {
  const pane = freshPane();
  replace(pane, h("p", { class: "loading" }, "Loading…"));
  let contact;
  try {
    contact = await api("GET", "/contacts/" + id);
  } catch (error) {
    if (!current(ticket)) return;
    replace(pane, h("div", { class: "pane-head" }, h("a", { href: "#/contacts", class: "back" }, "← Contacts")),
      h("p", { class: "error", id: "contact-error" }, error.status === 404 ? "Contact #" + id + " was not found." : error.message));
    return;
  }
  if (!current(ticket)) return;
  drawContact(pane, contact, ticket);
}

function drawContact(pane, contact, ticket, notice) {
  const attributes = Object.entries(contact.attributes || {}).filter(([key]) => key !== "flags");
  const value = (v) => typeof v === "string" ? v : JSON.stringify(v);
  const fact = (label, text, id) => [h("dt", {}, label), h("dd", { id, dir: "auto" }, text || "—")];
  const duplicates = h("ul", { id: "contact-duplicates", class: "duplicates" });
  replace(pane,
    h("div", { class: "pane-head" },
      h("a", { href: "#/contacts", class: "back" }, "← Contacts"),
      h("h2", { id: "contact-title", dir: "auto" }, contactName(contact)),
      h("p", { id: "contact-flags", class: "line" }, flagBadges(contact.flags))),
    notice ? h("p", { id: "contact-notice", class: "notice", role: "status" }, notice) : null,
    contact.merged_into ? h("p", { class: "notice", id: "contact-merged" }, "Merged into ",
      h("a", { href: "#/contacts/" + contact.merged_into }, "contact #" + contact.merged_into),
      ": everything of this person is there now.") : null,
    h("div", { class: "contact-columns" },
      h("div", {},
        h("dl", { class: "facts", id: "contact-facts" },
          fact("Email", contact.email, "contact-email"),
          fact("Language", contact.language, "contact-language"),
          fact("Time zone", contact.time_zone, "contact-time-zone"),
          fact("Flags", contact.flags.join(", "), "contact-flag-list"),
          fact("Automated updates", contact.updates_stopped_at ? "stopped " + when(contact.updates_stopped_at) : "sent"),
          fact("Since", when(contact.created_at))),
        h("h3", {}, "Attributes"),
        attributes.length ? h("table", { id: "contact-attributes" }, h("tbody", {}, attributes.map(([key, v]) =>
          h("tr", { "data-key": key }, h("th", { scope: "row", dir: "auto" }, key), h("td", { dir: "auto" }, value(v))))))
          : h("p", { class: "meta", id: "contact-attributes" }, "None."),
        h("h3", {}, "Channels"),
        h("ul", { id: "contact-identities", class: "identities" }, contact.identities.map((identity) =>
          h("li", { "data-id": identity.id, "data-channel": identity.channel },
            h("span", { class: "badge channel-" + identity.channel }, identity.channel), " ",
            h("span", {}, identity.inbox), " · ", h("code", { dir: "auto" }, identity.external_id),
            identity.unreachable ? h("span", { class: "error" }, " · unreachable: ", identity.unreachable) : null))),
        h("h3", {}, "Conversations"),
        h("ul", { id: "contact-conversations", class: "results" }, contact.conversations.length
          ? contact.conversations.map((c) => h("li", { class: "contact-conversation", "data-id": c.id },
            h("a", { href: "#/c/" + c.id },
              h("span", { class: "line" }, h("strong", {}, c.reference), " ",
                h("span", { class: "badge channel-" + c.channel }, c.channel), " ",
                h("span", { class: "badge priority-" + c.priority }, c.priority)),
              c.subject ? h("span", { class: "subject", dir: "auto" }, c.subject) : null,
              h("span", { class: "meta" }, c.status, c.team ? " · " + c.team : "", " · ", c.inbox, " · ", ago(c.last_activity_at)))))
          : h("li", { class: "meta" }, "None you can see."))),
      contact.merged_into ? null : h("div", {},
        h("section", { "aria-labelledby": "duplicates-title" },
          h("h3", { id: "duplicates-title" }, "Possible duplicates"),
          h("p", { class: "hint" }, "Other contacts with the same email address or phone: likely the same person."),
          duplicates),
        contactForm(contact, ticket))));
  if (!contact.merged_into) loadDuplicates(contact, duplicates, ticket);
}

// The agent's corrections: what changed is sent; a refusal shows next to its field.
function contactForm(contact, ticket) {
  const error = h("p", { class: "error", id: "contact-edit-error", role: "alert", hidden: true });
  const fieldError = (name) => h("p", { class: "error field-error", id: "contact-edit-" + name + "-error", role: "alert", hidden: true });
  const errors = { name: fieldError("name"), language: fieldError("language"), time_zone: fieldError("time_zone"), flags: fieldError("flags") };
  const field = (name, label, attrs) => {
    const input = h("input", Object.assign({ id: "contact-edit-" + name, name, value: contact[name] || "", dir: "auto",
      "aria-describedby": "contact-edit-" + name + "-error" }, attrs));
    return h("label", {}, label, input, errors[name]);
  };
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const others = contact.flags.filter((flag) => !KNOWN_FLAGS.includes(flag));
  const form = h("form", { id: "contact-edit", class: "contact-edit", onsubmit: async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of ["name", "language", "time_zone"]) {
      const text = form.elements[name].value.trim();
      if (text !== (contact[name] || "")) body[name] = text || null;
    }
    const flags = [...KNOWN_FLAGS.filter((flag) => form.elements["flag-" + flag].checked), ...others];
    if ([...flags].sort().join() !== [...contact.flags].sort().join()) body.flags = flags;
    for (const box of Object.values(errors)) showError(box, null);
    if (!Object.keys(body).length) { showError(error, { code: "unchanged", message: "nothing to save" }); return; }
    try {
      const updated = await api("PATCH", "/contacts/" + contact.id, body);
      if (!current(ticket)) return;
      drawContact(freshPane(), updated, ticket, "Saved.");
    } catch (problem) {
      // The API names the field it refuses first: `time_zone` ….
      const named = /^`([a-z_]+)`/.exec(problem.message || "");
      const box = named && errors[named[1]] ? errors[named[1]] : error;
      showError(box, problem);
      if (box !== error) showError(error, null);
    }
  } },
    h("h3", {}, "Edit"),
    field("name", "Name", { autocomplete: "off" }),
    field("language", "Language", { placeholder: "en, th, pt-br", size: 8 }),
    field("time_zone", "Time zone", { placeholder: "Asia/Bangkok", list: zones.length ? "time-zones" : null }),
    zones.length ? h("datalist", { id: "time-zones" }, zones.map((zone) => h("option", { value: zone }))) : null,
    h("fieldset", { class: "flags", "aria-describedby": "contact-edit-flags-error" }, h("legend", {}, "Flags"),
      KNOWN_FLAGS.map((flag) => h("label", { class: "inline" },
        h("input", { type: "checkbox", name: "flag-" + flag, id: "contact-edit-flag-" + flag, checked: contact.flags.includes(flag) }),
        " ", flag)),
      others.length ? h("p", { class: "meta" }, "Also: ", others.join(", ")) : null,
      errors.flags),
    error,
    h("button", { type: "submit", class: "primary", id: "contact-edit-save" }, "Save"));
  return form;
}

async function loadDuplicates(contact, list, ticket) {
  if (!contact.possible_duplicates.length) { replace(list, h("li", { class: "meta" }, "None found.")); return; }
  // Each is a contact the agent may see (the API lists no other); one that is gone by now
  // is left out.
  const others = (await Promise.all(contact.possible_duplicates.map((id) =>
    api("GET", "/contacts/" + id).catch(() => null)))).filter(Boolean);
  if (!current(ticket)) return;
  replace(list, others.length ? others.map((other) => {
    const phone = other.attributes && other.attributes.phone;
    return h("li", { class: "duplicate", "data-id": other.id },
      h("a", { href: "#/contacts/" + other.id, dir: "auto" }, contactName(other)), " ",
      h("span", { class: "meta" }, [other.email, typeof phone === "string" ? phone : null].filter(Boolean).join(" · ")),
      h("p", { class: "meta" }, other.identities.map((identity) => identity.channel + " " + identity.inbox).join(", "),
        " · ", other.conversations.length + (other.conversations.length === 1 ? " conversation" : " conversations")),
      h("button", { type: "button", class: "merge", "data-from": other.id,
        onclick: () => mergeDialog(contact, other, ticket) }, "Merge into this contact"));
  }) : h("li", { class: "meta" }, "None found."));
}

// Asks before merging: `other` becomes part of `contact`, for good.
function mergeDialog(contact, other, ticket) {
  const error = h("p", { class: "error", id: "merge-error", role: "alert", hidden: true });
  const confirm = h("button", { type: "submit", class: "primary", id: "merge-confirm" }, "Merge");
  const dialog = h("dialog", { id: "merge-dialog", "aria-labelledby": "merge-title" },
    h("form", { method: "dialog", onsubmit: async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        const merged = await api("POST", "/contacts/" + contact.id + "/merge", { from: other.id });
        dialog.close();
        if (!current(ticket)) return;
        drawContact(freshPane(), merged.contact, ticket,
          "Merged " + contactName(other) + " (#" + other.id + ") into this contact: " +
          merged.merged.identities + (merged.merged.identities === 1 ? " channel" : " channels") + " and " +
          merged.merged.conversations.length + (merged.merged.conversations.length === 1 ? " conversation" : " conversations") + " moved.");
      } catch (problem) { confirm.disabled = false; showError(error, problem); }
    } },
      h("h2", { id: "merge-title" }, "Merge these contacts?"),
      h("p", { dir: "auto" }, h("strong", {}, contactName(other)), " (#" + other.id + ")"),
      h("p", {}, "becomes part of ", h("strong", { dir: "auto" }, contactName(contact)), " (#" + contact.id + "): ",
        "its channels and conversations move here, and it is left empty. This cannot be undone."),
      error,
      h("div", { class: "row-buttons" },
        h("button", { type: "button", id: "merge-cancel", onclick: () => dialog.close() }, "Cancel"),
        confirm)));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  $("#merge-cancel", dialog).focus();
}

// ---- Supervisors -----------------------------------------------------------------------

async function renderSupervisor() {
  const pane = freshPane();
  document.body.classList.add("reading");
  replace(pane,
    h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Supervisor")),
    h("div", { id: "supervisor-tables" }, h("p", {}, "Loading…")),
    reportsSection());
  refreshSupervisorTables();
}

// The live half of the view: the stream's changes redraw the teams and agents, not the
// reports, so that a drill-down being read stays put and a burst of messages does not
// recompute a month of figures.
async function refreshSupervisorTables() {
  const box = $("#supervisor-tables");
  if (!box) return;
  try {
    const [teams, agents] = await Promise.all([api("GET", "/teams"), api("GET", "/agents")]);
    if (!box.isConnected) return;
    const setAvailability = (agent, available) => async () => {
      try {
        await api("PUT", "/agents/" + agent.id + "/availability", { available });
        refreshSupervisorTables();
      } catch (error) { alert(error.message); }
    };
    replace(box,
      h("h3", {}, "Teams"),
      h("div", { class: "table-scroll" }, h("table", { id: "team-table" },
        h("thead", {}, h("tr", {}, ["Team", "Tier", "Waiting", "Oldest waiting", "Assigned", "At risk / breached", "Agents available"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, teams.teams.map((team) => h("tr", { "data-team": team.key },
          h("th", { scope: "row" }, team.name), h("td", {}, "L" + team.tier), h("td", { class: "waiting" }, team.waiting),
          h("td", {}, team.oldest_waiting_since ? ago(team.oldest_waiting_since) : "—"), h("td", {}, team.assigned),
          h("td", {}, team.at_risk + " / " + team.breached), h("td", {}, team.agents_available + " / " + team.agents)))))),
      h("h3", {}, "Agents"),
      h("div", { class: "table-scroll" }, h("table", { id: "agent-table" },
        h("thead", {}, h("tr", {}, ["Agent", "Team", "Role", "Open", "Availability", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, agents.agents.map((agent) => h("tr", { "data-agent": agent.name },
          h("th", { scope: "row", dir: "auto" }, agent.name, agent.active ? "" : " (deactivated)"),
          h("td", {}, agent.teams.join(", ") || "—"), h("td", {}, agent.role), h("td", {}, agent.open_conversations),
          h("td", {}, agent.available ? "available" : "away"),
          h("td", {}, agent.active ? h("button", { onclick: setAvailability(agent, !agent.available) },
            agent.available ? "Set away" : "Set available") : null)))))));
  } catch (error) { if (box.isConnected) replace(box, h("p", { class: "error" }, error.message)); }
}

// ---- Supervisors: reports ------------------------------------------------------------------

const DASH = "—";
const SVG_NS = "http://www.w3.org/2000/svg";

// `h()` for SVG: its elements live in their own namespace, and `class` is an attribute
// there. Colours come from classes, not `style`: the page's policy forbids style attributes.
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function missing(value) { return value === null || value === undefined || Number.isNaN(value); }

// "45 s", "12 min", "3 h 5 min", "2 d 4 h": whole units, cut rather than rounded, so a
// duration never reads longer than it was.
function duration(ms) {
  if (missing(ms)) return DASH;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return seconds + " s";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return minutes + " min";
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  return Math.floor(hours / 24) + " d" + (hours % 24 ? " " + (hours % 24) + " h" : "");
}

function percent(fraction) { return missing(fraction) ? DASH : Math.round(fraction * 100) + "%"; }

function score(average) { return missing(average) ? DASH : average.toFixed(1) + " / 5"; }

function count(value) { return missing(value) ? DASH : String(value); }

const REPORT_RANGES = [
  { key: "today", label: "Today", interval: "hour", back: () => 0 },
  { key: "7d", label: "Last 7 days", interval: "day", back: () => 6 },
  { key: "30d", label: "Last 30 days", interval: "day", back: () => 29 },
  // Weeks start on Monday, as the API's weekly buckets do.
  { key: "week", label: "This week", interval: "day", back: (today) => (today.getDay() + 6) % 7 },
];

function isoDate(date) {
  const two = (n) => String(n).padStart(2, "0");
  return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate());
}

// The chosen range as dates in the browser's time zone, and that zone for the API: a day
// on the charts is the supervisor's own day, midnight to midnight, clock changes and all.
function reportRange(key) {
  const choice = REPORT_RANGES.find((range) => range.key === key) || REPORT_RANGES[1];
  const now = new Date();
  const day = (offset) => new Date(now.getFullYear(), now.getMonth(), now.getDate() + offset);
  const first = day(-choice.back(now));
  return {
    key: choice.key, interval: choice.interval, first, last: day(0),
    from: isoDate(first), to: isoDate(day(1)),
    time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  };
}

function reportQuery(range, extra) {
  return new URLSearchParams({ from: range.from, to: range.to, time_zone: range.time_zone, ...extra }).toString();
}

function reportsSection() {
  const section = h("section", { id: "reports", class: "reports", "aria-labelledby": "reports-title" });
  const picker = h("select", { id: "report-range", onchange: () => { app.reportRange = picker.value; loadReports(section); } },
    REPORT_RANGES.map((range) => h("option", { value: range.key, selected: range.key === app.reportRange }, range.label)));
  replace(section,
    h("h3", { id: "reports-title" }, "Reports"),
    h("div", { class: "report-bar" },
      h("label", { class: "inline" }, "Range", picker),
      h("button", { type: "button", id: "report-refresh", onclick: () => loadReports(section) }, "Refresh"),
      h("a", { id: "report-csv" }, "Download CSV")),
    h("p", { class: "hint", id: "report-range-said" }),
    h("div", { id: "report-body" }),
    h("section", { id: "report-drill", class: "drill", "aria-labelledby": "report-drill-title", hidden: true }));
  loadReports(section);
  return section;
}

// One report draws everything: the total and its series for the charts, the teams'
// groups for the table, and the same address with `format=csv` for the download.
async function loadReports(section) {
  const load = String(Number(section.dataset.load || 0) + 1);
  section.dataset.load = load;
  section.dataset.state = "loading";
  const range = reportRange(app.reportRange);
  const query = reportQuery(range, { by: "team", interval: range.interval });
  const csv = $("#report-csv", section);
  // A plain link: the API reads GETs with the session cookie, which a same-site
  // download sends, so the browser saves the file itself.
  csv.setAttribute("href", "/api/v1/reports/overview?" + query + "&format=csv");
  csv.setAttribute("download", "switchboard-report-" + range.from + "-to-" + range.to + ".csv");
  const dates = { day: "numeric", month: "short", year: "numeric" };
  $("#report-range-said", section).textContent = range.first.toLocaleDateString(undefined, dates)
    + (range.key === "today" ? "" : " – " + range.last.toLocaleDateString(undefined, dates)) + " · " + range.time_zone;
  const body = $("#report-body", section);
  replace(body, h("p", { class: "loading" }, "Loading…"));
  const drill = $("#report-drill", section);
  drill.hidden = true;
  replace(drill);
  try {
    const report = await api("GET", "/reports/overview?" + query);
    // A later choice of range is on its way, or the view is gone.
    if (section.dataset.load !== load || !section.isConnected) return;
    const pick = (title, params) => drillDown(section, title, { time_zone: range.time_zone, ...params });
    replace(body,
      h("div", { class: "charts" }, reportCharts(report, range, pick)),
      h("h4", {}, "By team"),
      teamReport(report, range, pick));
    section.dataset.query = query;
    section.dataset.state = "ready";
  } catch (error) {
    if (section.dataset.load === load) replace(body, h("p", { class: "error" }, error.message));
  }
}

function bucketRows(report, range) {
  const hourly = range.interval === "hour";
  const time = { hour: "2-digit", minute: "2-digit" };
  return (report.series || []).map((bucket) => {
    const from = new Date(bucket.from);
    return {
      from: bucket.from, to: bucket.to, figures: bucket.figures,
      label: hourly ? from.toLocaleTimeString(undefined, time) : from.toLocaleDateString(undefined, { weekday: "short", day: "numeric" }),
      long: hourly ? from.toLocaleTimeString(undefined, time) + "–" + new Date(bucket.to).toLocaleTimeString(undefined, time)
        : from.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" }),
    };
  });
}

function reportCharts(report, range, pick) {
  const rows = bucketRows(report, range);
  const unit = range.interval === "hour" ? "Hour" : "Day";
  const per = range.interval === "hour" ? " per hour" : " per day";
  const onPick = (series, row) => pick(series.label + ", " + row.long, { figure: series.figure, from: row.from, to: row.to });
  return [
    chart({ id: "chart-volume", kind: "bars", title: "Conversations opened and resolved" + per, rows, onPick,
      xTitle: unit, yTitle: "Conversations", format: count, top: countTop,
      series: [
        { key: "opened", label: "Opened", tone: "tone-blue", figure: "opened", value: (f) => f.opened },
        { key: "resolved", label: "Resolved", tone: "tone-green", figure: "resolved", value: (f) => f.resolved },
      ] }),
    chart({ id: "chart-first-response", kind: "lines", title: "First response, median" + per, rows, onPick,
      xTitle: unit, yTitle: "Waited", format: duration, top: durationTop,
      series: [
        // Business time is drawn over calendar time with smaller dots: a team open around
        // the clock has the same figures in both, and both should still show.
        { key: "calendar", label: "Calendar time", tone: "tone-blue", radius: 5, figure: "first_response",
          value: (f) => f.first_response.median_ms },
        { key: "business", label: "Business hours", tone: "tone-orange dashed", radius: 3, figure: "first_response",
          value: (f) => f.first_response.business_median_ms },
      ] }),
    chart({ id: "chart-sla", kind: "bars", title: "First responses within the SLA" + per, rows,
      xTitle: unit, yTitle: "Met", format: percent, top: () => 1,
      series: [{ key: "share_met", label: "Share met", tone: "tone-green", value: (f) => f.sla.first_response.share_met }] }),
    csatChart(report.total.csat, (title, figure) => pick(title, { figure, from: range.from, to: range.to })),
  ];
}

// The y axis's top: the largest count rounded up so that its half is a whole number.
function countTop(largest) {
  let top = 2;
  for (let power = 1; top < largest; power *= 10) {
    top = [2, 4, 10].map((step) => step * power).find((step) => step >= largest) || 20 * power;
  }
  return top;
}

// The y axis's top for durations: a length whose half reads as a round one too.
const DURATION_TOPS = [2, 4, 10, 20, 30, 60, 120, 240, 600, 1200, 1800, 3600, 7200, 14400, 21600, 43200,
  86400, 172800, 345600, 864000, 1728000, 5184000].map((seconds) => seconds * 1000);

function durationTop(largest) {
  return DURATION_TOPS.find((top) => top >= largest) || countTop(largest);
}

const CHART = { width: 560, height: 240, left: 84, right: 10, top: 12, bottom: 52 };

// A chart of `series` over the report's buckets, as bars side by side or as lines, with
// its axes; and a table of the same numbers for screen readers (the marks themselves
// are buttons where they lead to a drill-down).
function chart(spec) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const values = spec.rows.flatMap((row) => spec.series.map((series) => series.value(row.figures)))
    .filter((value) => !missing(value));
  const topValue = spec.top(Math.max(0, ...values));
  const band = plotWidth / Math.max(1, spec.rows.length);
  const scale = {
    band,
    x: (index) => left + index * band,
    y: (value) => top + plotHeight - (value / topValue) * plotHeight,
  };
  // Every bucket is named in the table; under the axis, at most eight fit.
  const every = Math.ceil(spec.rows.length / 8);
  const titleId = spec.id + "-title";
  return h("figure", { class: "chart-box", id: spec.id, "aria-labelledby": spec.id + "-caption" },
    h("figcaption", { id: spec.id + "-caption" }, spec.title),
    legend(spec.series),
    svg("svg", { class: "chart", viewBox: "0 0 " + width + " " + height, role: spec.onPick ? "group" : "img", "aria-labelledby": titleId },
      svg("title", { id: titleId }, spec.title),
      [0, topValue / 2, topValue].map((value) => svg("g", { class: "tick" },
        svg("line", { x1: left, x2: width - right, y1: scale.y(value), y2: scale.y(value) }),
        svg("text", { x: left - 6, y: scale.y(value), "text-anchor": "end", "dominant-baseline": "middle" }, spec.format(value)))),
      svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }),
      spec.rows.map((row, index) => index % every ? null : svg("text", { class: "bucket", x: scale.x(index) + band / 2,
        y: top + plotHeight + 20, "text-anchor": "middle" }, row.label)),
      svg("text", { class: "axis-title", x: left + plotWidth / 2, y: height - 6, "text-anchor": "middle" }, spec.xTitle),
      svg("text", { class: "axis-title", "text-anchor": "middle",
        transform: "translate(12 " + (top + plotHeight / 2) + ") rotate(-90)" }, spec.yTitle),
      spec.kind === "lines" ? lineMarks(spec, scale) : barMarks(spec, scale)),
    chartTable(spec));
}

function legend(series) {
  return h("ul", { class: "legend", "aria-hidden": "true" }, series.map((one) =>
    h("li", {}, svg("svg", { class: "swatch", viewBox: "0 0 10 10", width: 10, height: 10 },
      svg("rect", { class: one.tone, width: 10, height: 10, rx: 2 })), one.label)));
}

// What a mark says to a screen reader and in its tooltip; and, when it leads to the
// conversations behind it, what makes it a button for the mouse and the keyboard.
function markAttributes(spec, series, row, value) {
  const name = series.label + ", " + row.long + ": " + spec.format(value);
  // A count of none has nothing behind it; a duration always has its conversations.
  const behind = spec.kind === "lines" || value > 0;
  const pick = spec.onPick && series.figure && behind ? () => spec.onPick(series, row) : null;
  return {
    name,
    attrs: {
      "data-series": series.key, "data-from": row.from, "data-value": value,
      tabindex: pick ? 0 : null, role: pick ? "button" : null, "aria-label": pick ? name + ". List the conversations." : null,
      onclick: pick,
      onkeydown: pick ? (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(); }
      } : null,
    },
  };
}

function barMarks(spec, scale) {
  const gap = scale.band * 0.15;
  const width = (scale.band - 2 * gap) / spec.series.length;
  return spec.rows.flatMap((row, index) => spec.series.map((series, nth) => {
    const value = series.value(row.figures);
    if (missing(value)) return null;
    const mark = markAttributes(spec, series, row, value);
    return svg("rect", { class: "bar " + series.tone, x: scale.x(index) + gap + nth * width, y: scale.y(value),
      width: Math.max(1, width - 1), height: Math.max(0, scale.y(0) - scale.y(value)), ...mark.attrs },
      svg("title", {}, mark.name));
  }));
}

// A line per series through the buckets that have a value: a bucket without one (no
// conversation answered that day) breaks the line rather than drawing it down to zero.
function lineMarks(spec, scale) {
  return spec.series.map((series) => {
    const points = spec.rows.map((row, index) => ({ row, value: series.value(row.figures),
      x: scale.x(index) + scale.band / 2 })).filter((point) => !missing(point.value));
    let path = "";
    let previous = null;
    for (const point of points) {
      const joined = previous && spec.rows.indexOf(point.row) === spec.rows.indexOf(previous.row) + 1;
      path += (joined ? "L" : "M") + point.x.toFixed(1) + " " + scale.y(point.value).toFixed(1) + " ";
      previous = point;
    }
    return svg("g", { class: "line " + series.tone, "data-series": series.key },
      path ? svg("path", { d: path.trim() }) : null,
      points.map((point) => {
        const mark = markAttributes(spec, series, point.row, point.value);
        return svg("circle", { class: "dot", cx: point.x, cy: scale.y(point.value), r: series.radius || 4, ...mark.attrs },
          svg("title", {}, mark.name));
      }));
  });
}

function chartTable(spec) {
  // Wrapped: a table takes the width its cells need whatever its own width says.
  return h("div", { class: "visually-hidden" }, h("table", { id: spec.id + "-data" },
    h("caption", {}, spec.title),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, spec.xTitle),
      spec.series.map((series) => h("th", { scope: "col" }, series.label)))),
    h("tbody", {}, spec.rows.map((row) => h("tr", { "data-from": row.from, "data-to": row.to },
      h("th", { scope: "row" }, row.long),
      spec.series.map((series) => h("td", { "data-series": series.key }, spec.format(series.value(row.figures)))))))));
}

// Satisfaction over the whole range: the average score out of 5 and the share of those
// asked who answered, as two bars along their own scales.
function csatChart(csat, pick) {
  const width = CHART.width;
  const left = 140;
  const track = width - left - 110;
  const meters = [
    { key: "average", label: "Average score", value: csat.average, top: 5, text: score(csat.average), ends: ["0", "5"],
      figure: "csat_answers", count: csat.answers + " answers" },
    { key: "response_rate", label: "Response rate", value: csat.response_rate, top: 1, text: percent(csat.response_rate),
      ends: ["0%", "100%"], figure: "csat_asked", count: csat.asked + " asked" },
  ];
  const row = (meter, index) => {
    const y = 14 + index * 56;
    const filled = missing(meter.value) ? 0 : (meter.value / meter.top) * track;
    const name = meter.label + ": " + meter.text + " (" + meter.count + ")";
    const count = meter.key === "average" ? csat.answers : csat.asked;
    const open = count > 0 ? () => pick(meter.label + " (" + meter.count + ")", meter.figure) : null;
    return svg("g", { class: "meter", "data-series": meter.key },
      svg("text", { class: "axis-title", x: 0, y: y + 9, "dominant-baseline": "middle" }, meter.label),
      svg("rect", { class: "track", x: left, y, width: track, height: 18, rx: 3 }),
      svg("rect", { class: "bar tone-blue", x: left, y, width: filled, height: 18, rx: 3,
        tabindex: open ? 0 : null, role: open ? "button" : null, "aria-label": open ? name + ". List the conversations." : null,
        onclick: open, onkeydown: open ? (event) => {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); }
        } : null }, svg("title", {}, name)),
      svg("text", { x: left + track + 8, y: y + 9, "dominant-baseline": "middle" }, meter.text),
      svg("text", { x: left + track + 8, y: y + 32 }, meter.count),
      svg("text", { x: left, y: y + 32, "text-anchor": "start" }, meter.ends[0]),
      svg("text", { x: left + track, y: y + 32, "text-anchor": "end" }, meter.ends[1]));
  };
  return h("figure", { class: "chart-box", id: "chart-csat", "aria-labelledby": "chart-csat-caption" },
    h("figcaption", { id: "chart-csat-caption" }, "Satisfaction over the range"),
    svg("svg", { class: "chart", viewBox: "0 0 " + width + " 130", role: "group", "aria-labelledby": "chart-csat-title" },
      svg("title", { id: "chart-csat-title" }, "Satisfaction over the range"),
      meters.map(row)),
    h("div", { class: "visually-hidden" }, h("table", { id: "chart-csat-data" },
      h("caption", {}, "Satisfaction over the range"),
      h("tbody", {},
        h("tr", {}, h("th", { scope: "row" }, "Average score"), h("td", { "data-series": "average" }, score(csat.average))),
        h("tr", {}, h("th", { scope: "row" }, "Response rate"), h("td", { "data-series": "response_rate" }, percent(csat.response_rate))),
        h("tr", {}, h("th", { scope: "row" }, "Asked"), h("td", { "data-series": "asked" }, count(csat.asked))),
        h("tr", {}, h("th", { scope: "row" }, "Answers"), h("td", { "data-series": "answers" }, count(csat.answers)))))));
}

// The report's teams, and all of them together in the foot; a count leads to the
// conversations behind it.
function teamReport(report, range, pick) {
  const figure = (figures, name, label, params) => {
    const value = figures[name];
    return h("td", { "data-figure": name }, value > 0
      ? h("button", { type: "button", class: "figure-link", "aria-label": label + ": " + value + ". List the conversations.",
        onclick: () => pick(label, { figure: name, from: range.from, to: range.to, ...params }) }, String(value))
      : count(value));
  };
  const line = (title, figures, params, attrs) => h("tr", attrs,
    h("th", { scope: "row" }, title),
    figure(figures, "opened", title + ", opened", params),
    figure(figures, "resolved", title + ", resolved", params),
    h("td", { "data-figure": "first_response_median" }, duration(figures.first_response.median_ms)),
    h("td", { "data-figure": "sla_first_response_share_met" }, percent(figures.sla.first_response.share_met)),
    h("td", { "data-figure": "csat_average" }, score(figures.csat.average)));
  return h("div", { class: "table-scroll" }, h("table", { id: "report-team-table" },
    h("thead", {}, h("tr", {}, ["Team", "Opened", "Resolved", "First response (median)", "First response within SLA", "Satisfaction"]
      .map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, (report.groups || []).map((group) => line(group.key === null ? "No team" : teamName(group.key), group.figures,
      { by: "team", group: group.key === null ? "" : group.key }, { "data-team": group.key === null ? "" : group.key }))),
    h("tfoot", {}, line("All teams", report.total, {}, { "data-team": "*" }))));
}

// The conversations behind a figure, a hundred at a time, each a link to open it.
async function drillDown(section, title, params, after) {
  const box = $("#report-drill", section);
  const query = new URLSearchParams({ ...params, limit: "100" });
  if (after) query.set("after", after);
  try {
    const page = await api("GET", "/reports/conversations?" + query);
    if (!box.isConnected) return;
    const items = page.conversation_ids.map((id) => h("li", { "data-id": id }, h("a", { href: "#/c/" + id }, "#" + id)));
    const more = h("button", { type: "button", id: "report-drill-more", hidden: !page.next_after,
      onclick: () => { more.remove(); drillDown(section, title, params, page.next_after); } }, "More");
    if (after) {
      $("#report-drill-list", box).append(...items);
      box.append(more);
      return;
    }
    const heading = h("h4", { id: "report-drill-title", tabindex: "-1" },
      title + ": " + page.count + (page.count === 1 ? " conversation" : " conversations"));
    replace(box, heading,
      h("ul", { id: "report-drill-list", class: "drill-list" }, items),
      h("button", { type: "button", class: "close", onclick: () => { box.hidden = true; } }, "Close"),
      more);
    box.dataset.figure = params.figure;
    box.hidden = false;
    heading.focus();
  } catch (error) {
    if (!box.isConnected) return;
    replace(box, h("p", { class: "error" }, error.message));
    box.hidden = false;
  }
}

// ---- Mentions -------------------------------------------------------------------------

async function renderMentions() {
  const pane = $("#conversation");
  document.body.classList.add("reading");
  try {
    const page = await api("GET", "/mentions?limit=50");
    const open = (mention) => async () => {
      try {
        if (!mention.read_at) await api("POST", "/mentions/read", { ids: [mention.id] });
      } finally { location.hash = "#/c/" + mention.conversation_id; }
    };
    replace(pane,
      h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Mentions"),
        page.unread ? h("button", { id: "mentions-read-all", onclick: async () => {
          try { await api("POST", "/mentions/read", { all: true }); renderMentions(); refreshList(); }
          catch (error) { alert(error.message); }
        } }, "Mark all read") : null),
      page.mentions.length ? h("ul", { id: "mention-list", class: "conversations" }, page.mentions.map((mention) =>
        h("li", { class: "row mention" + (mention.read_at ? "" : " unread"), "data-mention": mention.id },
          h("button", { class: "mention-open conversation-link", onclick: open(mention) },
            h("span", { class: "line" }, h("strong", { dir: "auto" }, mention.by.name || "someone"),
              " · #" + mention.conversation_id, h("span", { class: "grow" }),
              h("time", { datetime: mention.created_at, title: when(mention.created_at) }, ago(mention.created_at))),
            h("span", { class: "subject", dir: "auto" }, mention.excerpt)))))
        : h("p", { class: "empty" }, "Nobody has mentioned you."));
  } catch (error) { replace(pane, h("p", { class: "error" }, error.message)); }
}

// ---- Forms, confirmations, secrets ----------------------------------------------------

// Boxes for the API's refusals beside a form's fields: `show` puts one next to the field
// its message names first (`teams` …, `bodies.it` …), else in the form's own box.
// `more` finds boxes made later (a saved reply's language rows).
function fieldErrors(prefix, names, more) {
  const boxes = {};
  for (const name of names) {
    boxes[name] = h("p", { class: "error field-error", id: prefix + "-" + name + "-error", role: "alert", hidden: true });
  }
  const general = h("p", { class: "error", id: prefix + "-error", role: "alert", hidden: true });
  const all = () => [general, ...Object.values(boxes), ...(more ? more.boxes() : [])];
  return {
    general,
    box: (name) => boxes[name],
    clear: () => all().forEach((box) => showError(box, null)),
    show(problem) {
      all().forEach((box) => showError(box, null));
      const named = /^`([^`]+)`/.exec(problem.message || "");
      const field = named ? named[1] : null;
      const box = field && (boxes[field] || (more && more.find(field)));
      showError(box || general, problem);
      if (box) box.scrollIntoView({ block: "nearest" });
    },
  };
}

// Asks before something that cannot be taken back; resolves to whether they agreed.
// Escape or Cancel says no.
function confirmDialog(title, text, action) {
  return new Promise((resolve) => {
    let agreed = false;
    const dialog = h("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog", onsubmit: (event) => { event.preventDefault(); agreed = true; dialog.close(); } },
        h("h2", { id: "confirm-title" }, title),
        h("p", { dir: "auto" }, text),
        h("div", { class: "row-buttons" },
          h("button", { type: "button", id: "confirm-cancel", onclick: () => dialog.close() }, "Cancel"),
          h("button", { type: "submit", class: "primary", id: "confirm-ok" }, action))));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(agreed); });
    document.body.append(dialog);
    dialog.showModal();
    $("#confirm-cancel", dialog).focus();
  });
}

// A secret the API shows only once (a sign-in link, a token), with a copy button: the
// clipboard where the browser allows it, else the text selected for Ctrl+C.
function secretField(id, label, value) {
  const field = h("input", { id, class: "secret", readonly: true, value, spellcheck: "false", autocomplete: "off",
    onfocus: (event) => event.target.select() });
  const said = h("span", { class: "meta", id: id + "-copied", role: "status" });
  const copy = h("button", { type: "button", id: id + "-copy", onclick: async () => {
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(value);
      said.textContent = "Copied.";
    } catch (_) {
      field.focus();
      field.select();
      said.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  } }, "Copy");
  return h("div", { class: "secret-row" }, h("label", { for: id }, label), h("div", { class: "inline-form" }, field, copy), said);
}

// What an admin must pass on now: shown once, never again.
function secretsBox(id, title, fields) {
  return h("section", { class: "secrets", id, role: "status", "aria-labelledby": id + "-title" },
    h("h3", { id: id + "-title" }, title),
    h("p", { class: "hint" }, "Shown only this once: copy it now and pass it on privately."),
    fields);
}

function teamName(key) {
  const team = app.teams.find((t) => t.key === key);
  return team ? team.name : key;
}

// Teams as checkboxes. The teams are sent in the order they were ticked, so the first
// ticked is the home team (an agent's present teams start in their order, home first;
// untick the home team and the next becomes it).
function teamPicker(prefix, chosen, error) {
  let order = chosen.filter((key) => app.teams.some((team) => team.key === key));
  const home = h("p", { class: "hint", id: prefix + "-home" });
  const showHome = () => {
    home.textContent = order.length ? "Home team: " + teamName(order[0]) + " (the first ticked)."
      : "Tick one team or more; the first ticked is the home team.";
  };
  showHome();
  const boxes = app.teams.map((team) => h("label", { class: "inline" },
    h("input", { type: "checkbox", id: prefix + "-team-" + team.key, name: "team", value: team.key,
      checked: order.includes(team.key), onchange: (event) => {
        order = order.filter((key) => key !== team.key);
        if (event.target.checked) order.push(team.key);
        showHome();
      } }),
    " ", team.name));
  return {
    node: h("fieldset", { class: "choices", id: prefix + "-teams", "aria-describedby": prefix + "-home " + prefix + "-teams-error" },
      h("legend", {}, "Teams"), h("div", { class: "choice-list" }, boxes), home, error),
    value: () => order.slice(),
  };
}

// The languages an agent reads, typed as tags separated by commas or spaces ("th, en"):
// queues give them conversations in those languages first.
function languagesInput(id, languages) {
  return h("input", { id, name: "languages", autocomplete: "off", placeholder: "th, en",
    value: (languages || []).join(", "), "aria-describedby": id + "-hint " + id + "-error" });
}

function languagesOf(input) {
  return input.value.split(/[\s,]+/).map((tag) => tag.trim()).filter((tag) => tag);
}

function languagesField(prefix, input, error) {
  return h("label", {}, "Languages they read", input,
    h("span", { class: "hint", id: prefix + "-languages-hint" },
      "Tags such as th, ar, en: the queues give them conversations in these languages first."),
    error);
}

function roleSelect(id, role) {
  return h("select", { id, name: "role", "aria-describedby": id + "-error" },
    ["agent", "supervisor", "admin"].map((value) => h("option", { value, selected: value === role }, value)));
}

// ---- Admins: agents ---------------------------------------------------------------------

function adminHead(title, here) {
  return h("div", { class: "pane-head" },
    h("a", { href: "#/", class: "back" }, "← Back"),
    h("nav", { class: "subnav", "aria-label": "Administration" },
      h("a", { href: "#/admin/agents", id: "admin-agents-link", "aria-current": here === "agents" ? "page" : null }, "Agents"),
      h("a", { href: "#/admin/audit", id: "admin-audit-link", "aria-current": here === "audit" ? "page" : null }, "Audit log")),
    h("h2", {}, title));
}

function agentRow(agent) {
  return h("li", { class: "agent-row", "data-id": agent.id, "data-name": agent.name },
    h("a", { href: "#/admin/agents/" + agent.id, class: "contact-link" },
      h("span", { class: "line" }, h("strong", { dir: "auto" }, agent.name), " ",
        h("span", { class: "badge role-" + agent.role }, agent.role),
        agent.active ? null : h("span", { class: "badge inactive" }, "deactivated")),
      h("span", { class: "meta" }, agent.teams.map(teamName).join(", ") || "no team", " · ",
        agent.available ? "available" : "away", " · ", agent.open_conversations + " open",
        agent.languages && agent.languages.length ? " · reads " + agent.languages.join(", ") : "",
        agent.has_password ? "" : " · no password yet")));
}

// `#/admin/agents`: every agent, and a form for a new one.
async function renderAgents(ticket) {
  const pane = freshPane();
  const list = h("ul", { id: "agent-list", class: "results" }, h("li", { class: "meta" }, "Loading…"));
  const created = h("div", { id: "agent-created" });
  replace(pane, adminHead("Agents", "agents"), list, created, newAgentForm(ticket, list, created));
  await loadAgents(ticket, list);
}

async function loadAgents(ticket, list) {
  try {
    const agents = (await api("GET", "/agents")).agents;
    if (!current(ticket)) return;
    replace(list, agents.length ? agents.map(agentRow) : h("li", { class: "meta" }, "No agents."));
  } catch (error) {
    if (!current(ticket)) return;
    replace(list, h("li", { class: "error meta", id: "agent-list-error" }, error.message));
  }
}

function newAgentForm(ticket, list, created) {
  const errors = fieldErrors("agent-new", ["name", "role", "teams", "languages", "token"]);
  const teams = teamPicker("agent-new", [], errors.box("teams"));
  const languages = languagesInput("agent-new-languages", []);
  const name = h("input", { id: "agent-new-name", name: "name", required: true, autocomplete: "off", dir: "auto",
    "aria-describedby": "agent-new-name-error" });
  const token = h("input", { id: "agent-new-token", name: "token", autocomplete: "off", dir: "auto",
    placeholder: "CRM sync", "aria-describedby": "agent-new-token-hint agent-new-token-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "agent-new-submit" }, "Create agent");
  const form = h("form", { id: "agent-new", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), role: form.elements.role.value, teams: teams.value() };
    const read = languagesOf(languages);
    if (read.length) body.languages = read;
    if (token.value.trim()) body.token = token.value.trim();
    errors.clear();
    submit.disabled = true;
    try {
      const answer = await api("POST", "/agents", body);
      if (!current(ticket)) return;
      const agent = answer.agent;
      replace(created, secretsBox("agent-new-secrets", "Created " + agent.name, [
        h("p", {}, "Give ", h("strong", { dir: "auto" }, agent.name), " this sign-in link (it works once, until ",
          when(answer.sign_in_link.expires_at), "):"),
        secretField("agent-new-link", "Sign-in link", answer.sign_in_link.url),
        answer.token ? secretField("agent-new-api-token", "API token “" + body.token + "”", answer.token) : null,
        h("p", {}, h("a", { href: "#/admin/agents/" + agent.id, id: "agent-new-open" }, "Manage " + agent.name)),
      ]));
      form.replaceWith(newAgentForm(ticket, list, created));
      $("#agent-new-link").focus();
      loadAgents(ticket, list);
    } catch (problem) {
      submit.disabled = false;
      errors.show(problem);
    }
  } },
    h("h3", {}, "New agent"),
    h("label", {}, "Name", name, errors.box("name")),
    h("label", {}, "Role ", roleSelect("agent-new-role", "agent"), errors.box("role")),
    teams.node,
    languagesField("agent-new", languages, errors.box("languages")),
    h("label", {}, "API token (optional)", token,
      h("span", { class: "hint", id: "agent-new-token-hint" }, "A label such as “CRM sync” issues a token for an integration."),
      errors.box("token")),
    errors.general,
    submit);
  return form;
}

// `#/admin/agents/{id}`: one agent's teams and role, access, sign-in link and tokens.
// `shown` carries what the last action answered (a notice, secrets shown once).
async function renderAgent(id, ticket, shown) {
  const pane = freshPane();
  if (!shown) replace(pane, adminHead("Agent", "agents"), h("p", { class: "loading" }, "Loading…"));
  let agent, tokens;
  try {
    const [agents, list] = await Promise.all([api("GET", "/agents"), api("GET", "/agents/" + id + "/tokens")]);
    agent = agents.agents.find((a) => a.id === id);
    tokens = list.tokens;
  } catch (error) {
    if (!current(ticket)) return;
    replace(pane, adminHead("Agent", "agents"),
      h("p", { class: "error", id: "agent-error" }, error.status === 404 ? "Agent #" + id + " was not found." : error.message));
    return;
  }
  if (!current(ticket)) return;
  if (!agent) { replace(pane, adminHead("Agent", "agents"), h("p", { class: "error", id: "agent-error" }, "Agent #" + id + " was not found.")); return; }
  const again = (next) => { if (current(ticket)) renderAgent(id, ticket, next); };
  const actionError = h("p", { class: "error", id: "agent-action-error", role: "alert", hidden: true });
  const fact = (label, text, factId) => [h("dt", {}, label), h("dd", { id: factId, dir: "auto" }, text)];
  const self = agent.id === app.session.agent.id;

  const deactivate = async () => {
    const open = agent.open_conversations;
    const agreed = await confirmDialog("Deactivate " + agent.name + "?",
      "Their sessions end at once, their tokens stop working, and their " + open +
      (open === 1 ? " open conversation goes" : " open conversations go") + " back to the queue. You can activate them again later.",
      "Deactivate");
    if (!agreed) return;
    try {
      const answer = await api("POST", "/agents/" + id + "/deactivate");
      const back = answer.returned_to_queue || [];
      again({ notice: "Deactivated " + agent.name + ". " + (back.length
        ? back.length + (back.length === 1 ? " conversation went" : " conversations went") + " back to the queue: " +
          back.map((c) => "#" + c).join(", ") + "."
        : "No open conversations went back to the queue.") });
    } catch (problem) { showError(actionError, problem); }
  };
  const activate = async () => {
    try {
      await api("POST", "/agents/" + id + "/activate");
      again({ notice: "Activated " + agent.name + ": their unrevoked tokens work again." });
    } catch (problem) { showError(actionError, problem); }
  };
  const newLink = async () => {
    try {
      const link = await api("POST", "/agents/" + id + "/sign-in-link");
      again({ secrets: secretsBox("agent-secrets", "New sign-in link for " + agent.name, [
        h("p", { class: "hint" }, "Their earlier unused links stop working. This one works once, until ", when(link.expires_at), "."),
        secretField("agent-link", "Sign-in link", link.url)]) });
    } catch (problem) { showError(actionError, problem); }
  };
  const revoke = (token) => async () => {
    const agreed = await confirmDialog("Revoke “" + token.label + "”?",
      "Whatever uses this token is refused from its next request. This cannot be undone.", "Revoke");
    if (!agreed) return;
    try {
      await api("DELETE", "/agents/" + id + "/tokens/" + token.id);
      again({ notice: "Revoked the token “" + token.label + "”." });
    } catch (problem) { showError(actionError, problem); }
  };

  replace(pane,
    adminHead(agent.name, "agents"),
    h("p", { class: "line", id: "agent-badges" }, h("span", { class: "badge role-" + agent.role }, agent.role),
      agent.active ? h("span", { class: "badge" }, "active") : h("span", { class: "badge inactive" }, "deactivated")),
    shown && shown.notice ? h("p", { class: "notice", id: "agent-notice", role: "status" }, shown.notice) : null,
    shown && shown.secrets ? shown.secrets : null,
    h("div", { class: "contact-columns" },
      h("div", {},
        h("dl", { class: "facts", id: "agent-facts" },
          fact("Teams", agent.teams.map(teamName).join(", ") || "—", "agent-teams"),
          fact("Role", agent.role, "agent-role"),
          fact("Languages", (agent.languages || []).join(", ") || "—", "agent-languages"),
          fact("Status", agent.active ? "active" : "deactivated", "agent-active"),
          fact("Availability", agent.available ? "available" : "away", "agent-available"),
          fact("Open conversations", String(agent.open_conversations), "agent-open"),
          fact("Password", agent.has_password ? "set" : "not yet (their link was not used)", "agent-password"),
          fact("Since", when(agent.created_at))),
        h("h3", {}, "Access"),
        h("div", { class: "actions" },
          agent.active
            ? h("button", { type: "button", id: "agent-deactivate", class: "danger", disabled: self,
              title: self ? "Another admin must do this" : null, onclick: deactivate }, "Deactivate…")
            : h("button", { type: "button", id: "agent-activate", onclick: activate }, "Activate"),
          agent.active ? h("button", { type: "button", id: "agent-issue-link", onclick: newLink }, "New sign-in link") : null,
          actionError),
        h("h3", {}, "API tokens"),
        h("ul", { id: "agent-tokens", class: "results" }, tokens.length ? tokens.map((token) =>
          h("li", { class: "token-row" + (token.revoked_at ? " revoked" : ""), "data-id": token.id },
            h("span", { class: "line" }, h("strong", { dir: "auto" }, token.label), h("span", { class: "grow" }),
              token.revoked_at ? h("span", { class: "badge inactive" }, "revoked")
                : h("button", { type: "button", class: "revoke danger", "aria-label": "Revoke " + token.label,
                  onclick: revoke(token) }, "Revoke…")),
            h("span", { class: "meta" }, "issued ", when(token.created_at),
              token.revoked_at ? " · revoked " + when(token.revoked_at) : "")))
          : h("li", { class: "meta" }, "None.")),
        agent.active ? newTokenForm(agent, again) : null),
      agentEditForm(agent, again)));
}

function newTokenForm(agent, again) {
  const errors = fieldErrors("token-new", ["label"]);
  const label = h("input", { id: "token-new-label", name: "label", required: true, autocomplete: "off", dir: "auto",
    placeholder: "CRM sync", "aria-describedby": "token-new-label-error" });
  return h("form", { id: "token-new", class: "inline-token", onsubmit: async (event) => {
    event.preventDefault();
    errors.clear();
    try {
      const answer = await api("POST", "/agents/" + agent.id + "/tokens", { label: label.value.trim() });
      again({ secrets: secretsBox("agent-secrets", "New API token for " + agent.name, [
        secretField("agent-token", "API token “" + answer.label + "”", answer.token)]) });
    } catch (problem) { errors.show(problem); }
  } },
    h("label", {}, "New token's label", h("div", { class: "inline-form" }, label,
      h("button", { type: "submit", id: "token-new-submit" }, "Issue token"))),
    errors.box("label"), errors.general);
}

function agentEditForm(agent, again) {
  const errors = fieldErrors("agent-edit", ["teams", "role", "languages"]);
  const teams = teamPicker("agent-edit", agent.teams, errors.box("teams"));
  const role = roleSelect("agent-edit-role", agent.role);
  const languages = languagesInput("agent-edit-languages", agent.languages);
  const form = h("form", { id: "agent-edit", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    const body = {};
    const wanted = teams.value();
    if (wanted.join() !== agent.teams.join()) body.teams = wanted;
    if (role.value !== agent.role) body.role = role.value;
    const read = languagesOf(languages);
    if (read.join() !== (agent.languages || []).join()) body.languages = read;
    errors.clear();
    if (!Object.keys(body).length) { showError(errors.general, { code: "unchanged", message: "nothing to save" }); return; }
    try {
      const updated = await api("PATCH", "/agents/" + agent.id, body);
      again({ notice: "Saved: " + updated.name + " is " + updated.role + " in " + updated.teams.map(teamName).join(", ") +
        (updated.languages.length ? ", reading " + updated.languages.join(", ") : "") + "." });
    } catch (problem) { errors.show(problem); }
  } },
    h("h3", {}, "Teams, role and languages"),
    teams.node,
    h("label", {}, "Role ", role, errors.box("role")),
    languagesField("agent-edit", languages, errors.box("languages")),
    errors.general,
    h("button", { type: "submit", class: "primary", id: "agent-edit-save" }, "Save"));
  return form;
}

// ---- Admins: the audit log ----------------------------------------------------------------

const AUDIT_ACTIONS = {
  "agent.created": "Agent created", "agent.updated": "Agent changed", "agent.deactivated": "Agent deactivated",
  "agent.activated": "Agent activated", "sign_in_link.issued": "Sign-in link issued", "token.issued": "Token issued",
  "token.revoked": "Token revoked", "subscription.created": "Subscription created",
  "subscription.enabled": "Subscription enabled", "subscription.disabled": "Subscription disabled",
  "subscription.deleted": "Subscription deleted",
};

// An entry's details as a sentence: `{"teams": {"from": [..], "to": [..]}}` reads
// "teams: billing, technical → billing".
function auditDetails(entry) {
  const details = entry.details || {};
  const text = (value) => Array.isArray(value) ? (value.length ? value.join(", ") : "none")
    : value && typeof value === "object" && "from" in value && "to" in value ? text(value.from) + " → " + text(value.to)
      : value && typeof value === "object" ? JSON.stringify(value) : String(value);
  if (entry.action === "agent.deactivated") {
    const back = details.returned_to_queue || [];
    return back.length ? back.length + (back.length === 1 ? " conversation" : " conversations") + " back to the queue: " +
      back.map((id) => "#" + id).join(", ") : "no open conversations to return";
  }
  if (entry.action === "token.issued" || entry.action === "token.revoked") {
    return "token #" + details.token_id + (details.label ? " “" + details.label + "”" : "");
  }
  if (entry.action === "sign_in_link.issued" && details.expires_at) return "valid until " + when(details.expires_at);
  return Object.entries(details).map(([key, value]) => key.replace(/_/g, " ") + ": " + text(value)).join("; ");
}

// `#/admin/audit`: what admins did, newest first, 25 at a time ("More" pages back).
async function renderAudit(ticket) {
  const pane = freshPane();
  const list = h("ol", { id: "audit-list", class: "results audit" });
  const message = h("p", { id: "audit-message", class: "empty", role: "status" }, "Loading…");
  const more = h("button", { type: "button", id: "audit-more", hidden: true }, "More");
  replace(pane, adminHead("Audit log", "audit"), message, list, more);
  let names = {};
  api("GET", "/agents").then((data) => {
    names = Object.fromEntries(data.agents.map((a) => [a.id, a.name]));
    list.querySelectorAll("[data-target-agent]").forEach((node) => {
      const name = names[node.dataset.targetAgent];
      if (name) node.textContent = name;
    });
  }).catch(() => {});
  let before = null;
  const load = async () => {
    const query = new URLSearchParams({ limit: "25" });
    if (before) query.set("before", before);
    more.disabled = true;
    try {
      const page = await api("GET", "/audit?" + query.toString());
      if (!current(ticket)) return;
      list.append(...page.entries.map((entry) => {
        const target = entry.target || {};
        const targetText = target.kind === "agent"
          ? h("a", { href: "#/admin/agents/" + target.id, "data-target-agent": target.id, dir: "auto" }, names[target.id] || "agent #" + target.id)
          : h("span", {}, (target.kind || "") + " #" + target.id);
        return h("li", { class: "audit-entry", "data-id": entry.id, "data-action": entry.action },
          h("span", { class: "line" },
            h("strong", {}, AUDIT_ACTIONS[entry.action] || entry.action), " ", targetText,
            h("span", { class: "grow" }),
            h("time", { datetime: entry.at, title: when(entry.at) }, when(entry.at))),
          h("span", { class: "meta" }, "by ", h("span", { class: "actor", dir: "auto" }, entry.actor_name || "command line"),
            " · ", h("code", {}, entry.action)),
          h("span", { class: "details", dir: "auto" }, auditDetails(entry)));
      }));
      before = page.entries.length ? page.entries[page.entries.length - 1].id : before;
      more.hidden = page.entries.length < 25;
      more.disabled = false;
      message.textContent = list.children.length ? "" : "Nothing yet.";
    } catch (error) {
      if (!current(ticket)) return;
      message.className = "error";
      replace(message, h("span", { class: "error-code" }, error.code), " " + error.message);
    }
  };
  more.addEventListener("click", load);
  await load();
}

// ---- Saved replies: the list and the form ------------------------------------------------

// `#/replies`: the agent's own saved replies and their teams' (supervisors and admins
// see every team's). Anyone changes their own; team replies only supervisors and admins.
async function renderReplies(ticket) {
  const pane = freshPane();
  const notice = app.notice;
  app.notice = null;
  replace(pane, h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Saved replies")),
    h("p", { class: "loading" }, "Loading…"));
  let replies;
  try {
    replies = (await api("GET", "/saved-replies")).saved_replies;
  } catch (error) {
    if (!current(ticket)) return;
    replace(pane, h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Saved replies")),
      h("p", { class: "error", id: "replies-error" }, error.message));
    return;
  }
  if (!current(ticket)) return;
  const item = (reply) => h("li", { class: "reply-row", "data-id": reply.id, "data-shortcut": reply.shortcut, "data-scope": reply.scope },
    h("a", { href: "#/replies/" + reply.id, class: "contact-link" },
      h("span", { class: "line" }, h("strong", { class: "shortcut" }, "/" + reply.shortcut), " ",
        h("span", { dir: "auto" }, reply.title), h("span", { class: "grow" }),
        reply.scope === "team" ? h("span", { class: "badge" }, reply.team) : null),
      h("span", { class: "meta" }, Object.keys(reply.bodies).join(", "), " (fallback ", reply.fallback, ")",
        reply.updated_by ? " · " + reply.updated_by.name + ", " + ago(reply.updated_at) : "")));
  const mine = replies.filter((reply) => reply.scope !== "team");
  const teams = replies.filter((reply) => reply.scope === "team");
  replace(pane,
    h("div", { class: "pane-head" }, h("a", { href: "#/", class: "back" }, "← Back"), h("h2", {}, "Saved replies")),
    notice ? h("p", { class: "notice", id: "replies-notice", role: "status" }, notice) : null,
    h("p", { class: "hint" }, "Type / and a shortcut in the composer to use one. ",
      h("a", { href: "#/replies/new", id: "reply-new-link" }, "New saved reply")),
    h("h3", {}, "Yours"),
    h("ul", { id: "replies-personal", class: "results" }, mine.length ? mine.map(item) : h("li", { class: "meta" }, "None yet.")),
    h("h3", {}, supervising() ? "Teams’" : "Your teams’", supervising() ? null : h("span", { class: "hint" }, " (read only)")),
    h("ul", { id: "replies-team", class: "results" }, teams.length ? teams.map(item) : h("li", { class: "meta" }, "None.")));
}

// One text per language: rows of a language tag and its text, added and removed.
function bodyRows(bodies, changed) {
  const list = h("div", { id: "reply-bodies", class: "body-rows" });
  const rows = [];
  let made = 0;
  const add = (language, text) => {
    const n = made++;
    const error = h("p", { class: "error field-error", id: "reply-body-" + n + "-error", role: "alert", hidden: true });
    const lang = h("input", { id: "reply-language-" + n, class: "reply-language", value: language || "", size: 6,
      placeholder: "en", autocomplete: "off", required: true, "aria-describedby": "reply-body-" + n + "-error" });
    const body = h("textarea", { id: "reply-body-" + n, class: "reply-body", rows: 4, dir: "auto", required: true,
      "aria-describedby": "reply-body-" + n + "-error" });
    body.value = text || "";
    const row = {
      language: () => lang.value.trim().toLowerCase(), text: () => body.value, error, lang,
      node: h("div", { class: "body-row", "data-language": (language || "").toLowerCase() },
        h("div", { class: "body-row-head" },
          h("label", { class: "inline" }, "Language", lang),
          h("button", { type: "button", class: "reply-remove-language", "aria-label": "Remove this language",
            onclick: () => { rows.splice(rows.indexOf(row), 1); row.node.remove(); changed(); } }, "Remove")),
        h("label", {}, "Text", body), error),
    };
    lang.addEventListener("input", () => { row.node.dataset.language = row.language(); changed(); });
    rows.push(row);
    list.append(row.node);
    changed();
    return row;
  };
  for (const [language, text] of Object.entries(bodies)) add(language, text);
  return {
    node: list, rows, add,
    boxes: () => rows.map((row) => row.error),
    find: (field) => {
      if (!field.startsWith("bodies.")) return null;
      const row = rows.find((r) => r.language() === field.slice(7).toLowerCase());
      return row ? row.error : null;
    },
  };
}

// `#/replies/new` and `#/replies/{id}`: a saved reply's form, or its texts for someone
// who may not change it (a team's reply, for an agent).
async function renderReply(id, ticket) {
  const pane = freshPane();
  let reply = null;
  if (id !== null) {
    replace(pane, h("p", { class: "loading" }, "Loading…"));
    try {
      reply = await api("GET", "/saved-replies/" + id);
    } catch (error) {
      if (!current(ticket)) return;
      replace(pane, h("div", { class: "pane-head" }, h("a", { href: "#/replies", class: "back" }, "← Saved replies")),
        h("p", { class: "error", id: "reply-error" }, error.status === 404 ? "Saved reply #" + id + " was not found." : error.message));
      return;
    }
    if (!current(ticket)) return;
  }
  const head = h("div", { class: "pane-head" }, h("a", { href: "#/replies", id: "replies-back" }, "← Saved replies"),
    h("h2", { dir: "auto" }, reply ? "/" + reply.shortcut : "New saved reply"));
  if (reply && reply.scope === "team" && !supervising()) {
    replace(pane, head,
      h("section", { id: "reply-readonly", class: "panel" },
        h("p", { class: "meta" }, reply.team, "’s saved reply: only supervisors and admins change it."),
        h("h3", { dir: "auto" }, reply.title),
        Object.entries(reply.bodies).map(([language, text]) => h("div", { class: "body-row", "data-language": language },
          h("p", { class: "meta" }, language, language === reply.fallback ? " (fallback)" : ""),
          h("p", { class: "text", dir: "auto" }, text)))));
    return;
  }
  replace(pane, head, replyForm(reply, ticket));
  $("#reply-shortcut").focus();
}

function replyForm(reply, ticket) {
  const fallback = h("select", { id: "reply-fallback", name: "fallback", "aria-describedby": "reply-form-fallback-error" });
  const syncFallback = () => {
    const chosen = fallback.value || (reply ? reply.fallback : "");
    const languages = [...new Set(rows.rows.map((row) => row.language()).filter(Boolean))];
    replace(fallback, h("option", { value: "" }, reply ? "Unchanged" : "Automatic"),
      languages.map((language) => h("option", { value: language, selected: language === chosen }, language)));
  };
  let rows = { rows: [] };
  rows = bodyRows(reply ? reply.bodies : { "": "" }, () => syncFallback());
  syncFallback();
  const errors = fieldErrors("reply-form", ["shortcut", "title", "bodies", "fallback", "team"], rows);
  const shortcut = h("input", { id: "reply-shortcut", name: "shortcut", required: true, autocomplete: "off",
    value: reply ? reply.shortcut : "", placeholder: "refund", "aria-describedby": "reply-form-shortcut-error" });
  const title = h("input", { id: "reply-title", name: "title", autocomplete: "off", dir: "auto",
    value: reply ? reply.title : "", placeholder: "Refund steps", "aria-describedby": "reply-form-title-error" });
  const team = !reply && supervising()
    ? h("select", { id: "reply-team", name: "team", "aria-describedby": "reply-form-team-error" },
      h("option", { value: "" }, "Only me"), app.teams.map((t) => h("option", { value: t.key }, t.name)))
    : null;
  const collect = () => {
    const bodies = {};
    for (const row of rows.rows) {
      const language = row.language();
      if (!language) { showError(row.error, { code: "invalid_field", message: "type a language tag such as en or pt-br" }); return null; }
      if (language in bodies) { showError(row.error, { code: "invalid_field", message: "`" + language + "` is here twice" }); return null; }
      bodies[language] = row.text();
    }
    return bodies;
  };
  const save = h("button", { type: "submit", class: "primary", id: "reply-save" }, "Save");
  const form = h("form", { id: "reply-form", class: "panel reply-form", onsubmit: async (event) => {
    event.preventDefault();
    errors.clear();
    const bodies = collect();
    if (!bodies) return;
    let body;
    if (!reply) {
      body = { shortcut: shortcut.value.trim(), bodies };
      if (title.value.trim()) body.title = title.value.trim();
      if (fallback.value) body.fallback = fallback.value;
      if (team && team.value) body.team = team.value;
    } else {
      body = {};
      if (shortcut.value.trim() !== reply.shortcut) body.shortcut = shortcut.value.trim();
      if (title.value.trim() !== reply.title) body.title = title.value.trim();
      const changedBodies = {};
      for (const [language, text] of Object.entries(bodies)) if (reply.bodies[language] !== text) changedBodies[language] = text;
      for (const language of Object.keys(reply.bodies)) if (!(language in bodies)) changedBodies[language] = null;
      if (Object.keys(changedBodies).length) body.bodies = changedBodies;
      if (fallback.value && fallback.value !== reply.fallback) body.fallback = fallback.value;
      if (!Object.keys(body).length) { showError(errors.general, { code: "unchanged", message: "nothing to save" }); return; }
    }
    save.disabled = true;
    try {
      const saved = await api(reply ? "PATCH" : "POST", reply ? "/saved-replies/" + reply.id : "/saved-replies", body);
      if (!current(ticket)) return;
      app.notice = "Saved /" + saved.shortcut + ".";
      go("#/replies");
    } catch (problem) {
      save.disabled = false;
      errors.show(problem);
    }
  } },
    team ? h("label", {}, "For ", team, errors.box("team")) : reply && reply.scope === "team"
      ? h("p", { class: "meta" }, "Team ", reply.team, "’s saved reply") : h("p", { class: "meta" }, "Only you see it."),
    h("label", {}, "Shortcut", shortcut, h("span", { class: "hint" }, " letters, digits, - and _"), errors.box("shortcut")),
    h("label", {}, "Title", title, errors.box("title")),
    h("fieldset", { class: "choices bodies" }, h("legend", {}, "Text per language"),
      h("p", { class: "hint" }, "Placeholders: {{contact.name}}, {{contact.first_name}}, {{contact.email}}, ",
        "{{conversation.reference}}, {{conversation.subject}}, {{agent.name}}, {{team.name}}; ",
        "{{contact.name | default: \"there\"}} fills what is missing."),
      rows.node,
      h("button", { type: "button", id: "reply-add-language", onclick: () => { const row = rows.add("", ""); row.lang.focus(); } },
        "Add a language"),
      errors.box("bodies")),
    h("label", {}, "Fallback language ", fallback,
      h("span", { class: "hint" }, " used when the customer’s language has no text"), errors.box("fallback")),
    errors.general,
    h("div", { class: "actions" }, save,
      reply ? h("button", { type: "button", id: "reply-delete", class: "danger", onclick: async () => {
        const agreed = await confirmDialog("Delete /" + reply.shortcut + "?",
          "Nobody can use it after this. Replies already sent keep their text.", "Delete");
        if (!agreed) return;
        try {
          await api("DELETE", "/saved-replies/" + reply.id);
          if (!current(ticket)) return;
          app.notice = "Deleted /" + reply.shortcut + ".";
          go("#/replies");
        } catch (problem) { errors.show(problem); }
      } }, "Delete…") : null));
  return form;
}

// ---- Live updates ---------------------------------------------------------------------

function openStream() {
  // EventSource reconnects by itself, sending the last id it saw: nothing is missed.
  const stream = new EventSource("/api/v1/stream");
  app.stream = stream;
  const changed = (event) => {
    let data = {};
    try { data = JSON.parse(event.data); } catch (_) { return; }
    if (data.conversation_id === app.openId) reloadOpen();
    scheduleRefresh();
  };
  for (const kind of ["message.created", "conversation.created", "conversation.routed", "conversation.assigned",
    "conversation.escalated", "conversation.transferred", "conversation.status_changed",
    "conversation.priority_changed", "conversation.labels_changed", "sla.warning", "sla.breached", "csat.answered", "message.edited",
    "delivery.failed", "delivery.retried", "delivery.skipped"]) {
    stream.addEventListener(kind, changed);
  }
  // A note that mentions this agent: the badge counts it at once, wherever they are.
  stream.addEventListener("agent.mentioned", (event) => {
    let data = {};
    try { data = JSON.parse(event.data); } catch (_) { return; }
    if (data.conversation_id === app.openId) reloadOpen();
    if (data.event && data.event.data && data.event.data.agent_id === app.session.agent.id && location.hash === "#/mentions") {
      renderMentions();
    }
    scheduleRefresh();
  });
  // The customer's phone got or read a reply: its line changes; the list does not.
  stream.addEventListener("delivery.reported", (event) => {
    let data = {};
    try { data = JSON.parse(event.data); } catch (_) { return; }
    if (data.conversation_id === app.openId) reloadOpen();
  });
  stream.addEventListener("stream.ready", () => document.body.dataset.live = "yes");
  stream.addEventListener("stream.reset", () => { scheduleRefresh(); reloadOpen(); });
  stream.onerror = () => { document.body.dataset.live = "no"; };
}

function scheduleRefresh() {
  // Many events in a burst make one reload of the list.
  if (app.refreshTimer) return;
  app.refreshTimer = setTimeout(() => {
    app.refreshTimer = null;
    if (location.hash === "#/supervisor") refreshSupervisorTables();
    refreshList();
  }, 250);
}

start();
