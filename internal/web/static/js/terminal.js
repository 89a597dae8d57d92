import "./api.js";
import "../dist/terminal.js";
