import { Link } from 'wouter';
import { PageHeader } from '../components/page-header.tsx';

export function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <p>
        There is no page at this address. Go to the <Link href="/">fleet overview</Link>.
      </p>
    </>
  );
}
