/**
 * Logger: the 1.0.0 logger class. The line's format (text or json) and whether the level lets
 * it through are the core's (native.formatLogLine); this class only turns the JS arguments
 * into text and writes the line to the console stream for its level.
 */
'use strict';

const native = require('./native');

/** The 1.0.0 logger: `[ISO time] [LEVEL] [serviceName] message args...` on the console. */
class Logger {
  constructor(level = 'info', serviceName = 'event-bus') {
    this.level = level;
    this.serviceName = serviceName;
  }

  debug(message, ...args) {
    this._log('debug', message, ...args);
  }

  info(message, ...args) {
    this._log('info', message, ...args);
  }

  warn(message, ...args) {
    this._log('warn', message, ...args);
  }

  error(message, error, ...args) {
    if (error instanceof Error) {
      this._log('error', message, { error: error.message, stack: error.stack }, ...args);
    } else if (error) {
      this._log('error', message, error, ...args);
    } else {
      this._log('error', message, ...args);
    }
  }

  setLevel(level) {
    this.level = level;
  }

  getLevel() {
    return this.level;
  }

  _log(level, message, ...args) {
    const parts = args.map((arg) => {
      if (typeof arg === 'object') {
        try {
          return JSON.stringify(arg, null, 2);
        } catch {
          return String(arg);
        }
      }
      return String(arg);
    });
    const text = [message, ...parts].join(' ');
    const line = native.formatLogLine(String(this.level), level, String(this.serviceName), text, this._json === true);
    if (line === null) return;
    if (level === 'error') console.error(line);
    else if (level === 'warn') console.warn(line);
    else console.log(line);
  }
}

module.exports = { Logger };
