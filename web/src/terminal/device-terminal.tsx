import { useEffect, useRef, useState } from 'react';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { decodeBase64, inputFrame, parseServerFrame, terminalProtocols, terminalUrl, type ClientFrame } from './terminal-frames.ts';

type Status = { kind: 'connecting' } | { kind: 'open'; recording: string } | { kind: 'closed'; message: string; failed: boolean };

/**
 * xterm.js on the device's shell, through the server's terminal relay. Loaded with import() only
 * when an operator opens a terminal, so the other pages do not carry xterm.js.
 */
export function DeviceTerminal({ device, token, onClose }: { device: string; token: string; onClose: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>({ kind: 'connecting' });

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 13,
      theme: { background: '#111418', foreground: '#e6e8eb', cursor: '#8fb3ff' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();

    const socket = new WebSocket(terminalUrl(device, term.cols, term.rows), terminalProtocols(token));
    const send = (frame: ClientFrame) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    };
    socket.onmessage = (event) => {
      const frame = parseServerFrame(event.data);
      if (!frame) return;
      switch (frame.type) {
        case 'opened':
          setStatus({ kind: 'open', recording: frame.recording });
          term.focus();
          break;
        case 'output':
          term.write(decodeBase64(frame.data));
          break;
        case 'exit':
          term.write(`\r\n\x1b[2m[session ended, exit status ${frame.exitCode}]\x1b[0m\r\n`);
          setStatus({ kind: 'closed', message: `Session ended (exit status ${frame.exitCode}).`, failed: frame.exitCode !== 0 });
          break;
        case 'error':
          setStatus({ kind: 'closed', message: frame.message, failed: true });
          break;
      }
    };
    socket.onclose = (event) =>
      setStatus((s) => (s.kind === 'closed' ? s : { kind: 'closed', message: event.reason || (s.kind === 'connecting' ? 'The terminal could not be opened.' : 'The connection closed.'), failed: s.kind === 'connecting' }));
    const typing = term.onData((typed) => send(inputFrame(typed)));
    const resizing = term.onResize(({ cols, rows }) => send({ type: 'resize', cols, rows }));
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(element);

    return () => {
      observer.disconnect();
      typing.dispose();
      resizing.dispose();
      socket.close();
      term.dispose();
    };
  }, [device, token]);

  return (
    <div className="terminal">
      <div className="terminal__bar">
        <span role="status" className={status.kind === 'closed' && status.failed ? 'text-bad' : 'muted'}>
          {status.kind === 'connecting' ? 'Connecting…' : status.kind === 'open' ? `Connected · recorded as ${status.recording}` : status.message}
        </span>
        <button type="button" className="button button--quiet" onClick={onClose}>
          Close terminal
        </button>
      </div>
      <div className="terminal__screen" data-testid="terminal" ref={host} />
    </div>
  );
}
