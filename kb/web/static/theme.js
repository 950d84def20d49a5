// Runs in <head> before first paint (kept out of the HTML for the CSP): applies a saved colour
// theme and marks the page as scripted, so hints for keyboard shortcuts only show when they work.
(function () {
  var root = document.documentElement;
  root.classList.add("js");
  try {
    var t = localStorage.getItem("theme");
    if (t === "dark" || t === "light") root.setAttribute("data-theme", t);
  } catch (e) { /* storage blocked: follow the system */ }
})();
