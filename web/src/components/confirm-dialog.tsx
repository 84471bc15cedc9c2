import { useEffect, useId, useRef, useState } from 'react';
import { ApiError } from '../api/api-client.ts';

/**
 * An action that changes the fleet asks first, in a modal <dialog> (role "dialog", focus kept
 * inside, Escape cancels). The server's answer to a refused action shows in the dialog verbatim.
 */
export function ConfirmButton({
  label,
  title,
  description,
  danger,
  onConfirm,
}: {
  label: string;
  title: string;
  description: string;
  danger?: boolean;
  onConfirm: () => Promise<unknown>;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const headingId = useId();
  const textId = useId();

  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);

  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      setOpen(false);
    } catch (cause) {
      setError(cause instanceof ApiError ? cause.message : String(cause));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button type="button" className={danger ? 'button button--danger' : 'button'} onClick={() => setOpen(true)}>
        {label}
      </button>
      <dialog ref={dialog} className="dialog" aria-labelledby={headingId} aria-describedby={textId} onClose={() => setOpen(false)}>
        {open ? (
          <form
            method="dialog"
            onSubmit={(event) => {
              event.preventDefault();
              void confirm();
            }}
          >
            <h2 id={headingId}>{title}</h2>
            <p id={textId}>{description}</p>
            {error ? (
              <p className="notice notice--error" role="alert">
                {error}
              </p>
            ) : null}
            <div className="dialog__buttons">
              <button type="button" className="button button--quiet" onClick={() => setOpen(false)} disabled={busy}>
                Cancel
              </button>
              <button type="submit" className={danger ? 'button button--danger' : 'button button--primary'} disabled={busy}>
                Confirm
              </button>
            </div>
          </form>
        ) : null}
      </dialog>
    </>
  );
}
