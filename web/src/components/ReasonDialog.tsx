// An action that the ledger records asks why first: a modal <dialog> (keyboard and screen
// reader friendly by itself: focus moves in, Escape cancels) with a required reason.
import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";

export function ReasonDialog({
  open,
  title,
  confirm,
  onCancel,
  onConfirm,
  reasonLabel = "Reason (recorded in the ledger)",
  children,
}: {
  open: boolean;
  title: string;
  confirm: string;
  onCancel: () => void;
  onConfirm: (reason: string) => Promise<void>;
  reasonLabel?: string;
  children?: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  // Several dialogs live on one page: ids must be unique for the labels to name the right field.
  const id = useId();
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (open && !dialog.open) {
      setReason("");
      setError(null);
      dialog.showModal();
    }
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={`${id}-title`} onCancel={onCancel}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          onConfirm(reason.trim()).then(
            () => setBusy(false),
            (err: unknown) => {
              setBusy(false);
              setError(err instanceof Error ? err.message : String(err));
            },
          );
        }}
      >
        <h2 id={`${id}-title`}>{title}</h2>
        {children}
        <label for={`${id}-reason`}>{reasonLabel}</label>
        <textarea
          id={`${id}-reason`}
          name="reason"
          required
          rows={3}
          value={reason}
          onInput={(e) => setReason(e.currentTarget.value)}
        />
        {error !== null && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" class="danger" disabled={busy || reason.trim() === ""}>
            {busy ? "Working…" : confirm}
          </button>
        </div>
      </form>
    </dialog>
  );
}
