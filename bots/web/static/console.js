// The console's few scripts (no framework, no CDN): the login form submits itself; forms with data-confirm ask
// first. Page-specific scripts (the upload's progress) live in their own files.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const auto = document.querySelector("form[data-autosubmit]");
  if (auto) auto.submit();
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
});
