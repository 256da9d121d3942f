import multiprocessing

import pytest
from sqlalchemy import text

from catalog import sequences
from catalog.db import make_engine


def test_numbers_start_at_one_and_scopes_are_independent(engine) -> None:
    assert [sequences.allocate(engine, "a") for _ in range(3)] == [1, 2, 3]
    assert sequences.allocate(engine, "b") == 1
    assert sequences.current(engine, "a") == 3
    assert sequences.current(engine, "never") == 0


def test_a_rolled_back_transaction_never_gives_its_number_back(engine) -> None:
    first = sequences.allocate(engine, "s")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(
            text("insert into stations (id, unit, created_at) values ('ST01', 'U', CURRENT_TIMESTAMP)")
        )
        raise RuntimeError("the work using the number failed")
    assert sequences.allocate(engine, "s") == first + 1


def test_raise_floor_only_moves_up(engine) -> None:
    sequences.allocate(engine, "s")
    assert sequences.raise_floor(engine, "s", 40) == 40
    assert sequences.raise_floor(engine, "s", 10) == 40
    assert sequences.allocate(engine, "s") == 41
    assert sequences.raise_floor(engine, "new", 7) == 7


def _allocate_many(url: str, scope: str, count: int, queue) -> None:
    engine = make_engine(url)
    try:
        queue.put([sequences.allocate(engine, scope) for _ in range(count)])
    finally:
        engine.dispose()


@pytest.mark.parametrize("workers, each", [(6, 25)])
def test_concurrent_processes_never_get_the_same_number(engine, db_url: str, workers: int, each: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_allocate_many, args=(db_url, "shared", each, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    issued = [n for batch in results for n in batch]
    assert sorted(issued) == list(range(1, workers * each + 1))
    for batch in results:  # each process sees its own numbers rising
        assert batch == sorted(batch)
