// entangle rating study: keys 1-7 choose a rating, the response time goes with the answer, one submit per page.
(function () {
  "use strict";
  var form = document.getElementById("rating-form");
  if (!form) { return; }
  var shown = performance.now();
  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    sent = true;
    document.getElementById("rt_ms").value = String(Math.round(performance.now() - shown));
    var chosen = event.submitter;
    if (chosen) { chosen.classList.add("chosen"); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.repeat) { return; }
    var button = /^[1-7]$/.test(event.key) ? document.getElementById("rate-" + event.key) : null;
    if (button) { event.preventDefault(); button.click(); }
  });
})();
