"""What XO's ``/events`` sends, fact by fact, and the fake XO sending the same.

The spec only says "an SSE connection"; the package's compiled event service
says the rest. Each test names the file of ``@xen-orchestra/rest-api`` (under
``dist/``) that states its fact, checks that the file of the version in use
still says it (so ``scripts/check-xo-spec`` flags a release that changes it),
then shows the fake XO doing the same over HTTP.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from entrypoints.testkits.fake_xo import FakeXOServer
from entrypoints.testkits.fake_xo.events import LISTENER_TYPES
from tests.spec.sse import COOKIE, EventStream, open_events
from tests.spec.xo_spec import XOSpec, listener_types
from tests.xo.support import HOST_A1, HOST_A2, POOL_A, TOKEN, build_world

SERVICE = "events/event.service.mjs"
CLASSES = "events/event.class.mjs"
CONTROLLER = "events/event.controller.mjs"
LISTENER = "abstract-classes/listener.mjs"
ERRORS = "middlewares/generic-error-handler.middleware.mjs"
VALIDATION = "middlewares/tsoa-to-xo-error.middleware.mjs"
ROUTES = "open-api/routes/routes.js"
VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
PING = 0.2


def says(spec: XOSpec, relative: str, *snippets: str) -> None:
    """The package file still states the fact (whitespace aside)."""
    text = " ".join(spec.source(relative).split())
    for snippet in snippets:
        assert " ".join(snippet.split()) in text, f"dist/{relative} no longer says: {snippet}"


@pytest.fixture
async def xo() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=TOKEN, ping_interval=PING) as server:
        build_world(server)
        server.state.add_vm(name_label="node-1", vm_id=VM_ID, host_id=HOST_A1)
        yield server


@pytest.fixture
async def stream(xo: FakeXOServer) -> AsyncIterator[EventStream]:
    async with open_events(xo.url) as events:
        yield events


# -- the connection -------------------------------------------------------------
async def test_init_is_the_first_frame_and_carries_only_the_connection_id(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.service.mjs: createSseSubscriber broadcasts init first
    says(xo_spec, SERVICE, "subscriber.broadcast('init', { id: subscriber.id });")
    assert stream.init is not None
    assert stream.init.event == "init"
    assert list(stream.init.data) == ["id"]


async def test_a_connection_id_is_a_random_uuid(xo_spec: XOSpec, xo: FakeXOServer) -> None:
    # dist/events/event.class.mjs: Subscriber's constructor
    says(xo_spec, CLASSES, "this.#id = crypto.randomUUID();")
    async with open_events(xo.url) as one, open_events(xo.url) as two:
        assert uuid.UUID(one.id).version == 4
        assert one.id != two.id


async def test_a_frame_is_an_event_line_a_json_data_line_and_a_blank_line(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: Subscriber.broadcast
    says(
        xo_spec, CLASSES, "const payload = `event: ${event}\\ndata: ${JSON.stringify(data)}\\n\\n`;"
    )
    assert stream.init is not None
    assert stream.init.raw == f'event: init\ndata: {{"id": "{stream.id}"}}\n\n'


async def test_the_stream_headers_are_the_event_service_s(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.service.mjs: createSseSubscriber's headers
    says(
        xo_spec,
        SERVICE,
        "'Content-Type': 'text/event-stream'",
        "Connection: 'keep-alive'",
        "'Cache-Control': 'no-cache, no-transform'",
    )
    headers = stream.response.headers
    assert stream.response.status_code == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache, no-transform"
    assert headers["connection"] == "keep-alive"


async def test_a_new_connection_has_no_subscription(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.controller.mjs: "By default, there are no active subscriptions"
    says(xo_spec, CONTROLLER, "By default, there are no active subscriptions in the stream.")
    xo.state.rename_vm(VM_ID, name_label="renamed")

    assert (await stream.frame()).event == "ping"  # and nothing before it


async def test_without_credentials_the_stream_is_refused_with_401(
    xo_spec: XOSpec, xo: FakeXOServer
) -> None:
    # dist/middlewares/generic-error-handler.middleware.mjs: invalidCredentials is a 401
    says(
        xo_spec,
        ERRORS,
        "statusCode = 401;",
        "res.setHeader('WWW-Authenticate', 'Basic realm=\"xo\"');",
    )
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0") as client:
        response = await client.get("/events")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="xo"'
    assert response.json() == {"error": "invalid credentials"}


# -- pings ---------------------------------------------------------------------
async def test_a_ping_carries_the_time_in_milliseconds(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: PingListener.handleData
    says(xo_spec, CLASSES, "return { ping: Date.now() };")
    before = int(time.time() * 1000)
    ping = await stream.frame()

    assert ping.event == "ping"
    assert list(ping.data) == ["ping"]
    assert before <= ping.data["ping"] <= int(time.time() * 1000)


def test_pings_come_every_30_seconds_by_default(xo_spec: XOSpec) -> None:
    # dist/events/event.class.mjs: PingListener's setInterval
    says(xo_spec, CLASSES, "this.eventEmitter.emit('ping'); }, 1000 * 30);")
    assert FakeXOServer().hub.ping_interval == 30.0


async def test_every_connection_is_pinged_from_the_start(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.service.mjs: createSseSubscriber adds the ping listener itself
    says(xo_spec, SERVICE, "this.addListenerFor(subscriber.id, { type: 'ping' });")
    assert (await stream.frame(within=PING * 5)).event == "ping"


async def test_pings_keep_their_cadence_while_other_frames_flow(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: a setInterval, not a timer reset by each frame
    says(xo_spec, CLASSES, "this.#intervalId = setInterval(() => {")
    assert (await stream.subscribe("VM", ["id", "name_label"])).status_code == 201
    pings = 0

    async def busy() -> None:
        for n in range(30):  # an update every PING / 4 seconds
            xo.state.rename_vm(VM_ID, name_label=f"n{n}")
            await asyncio.sleep(PING / 4)

    writer = asyncio.create_task(busy())
    try:
        while not writer.done():
            frame = await stream.frame()
            pings += frame.event == "ping"
    finally:
        await writer

    assert pings >= 3  # 30 x PING/4 = 7.5 intervals of updates


async def test_all_connections_share_one_ping_cadence(xo_spec: XOSpec, xo: FakeXOServer) -> None:
    # dist/events/event.service.mjs: one 'ping' listener for every subscriber (#getListener)
    says(xo_spec, SERVICE, "if (this.#listeners.has(type)) { return this.#listeners.get(type); }")
    xo.hub.configure(ping_interval=1.0)
    async with open_events(xo.url) as first:
        await first.frame(within=2)  # a tick has passed since the cadence started
        await asyncio.sleep(0.5)  # half an interval: a cadence of its own would be 500 ms off
        async with open_events(xo.url) as second:
            one, two = await asyncio.gather(first.frame(within=2), second.frame(within=2))

    assert one.event == two.event == "ping"
    assert abs(one.data["ping"] - two.data["ping"]) < 200  # the same tick


# -- subscriptions -----------------------------------------------------------------
async def test_a_subscription_answers_201_with_the_collection_as_its_id(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/events/event.controller.mjs: addSubscription
    says(
        xo_spec, CONTROLLER, "return { id: body.collection };", "SuccessResponse(createdResp.status"
    )
    answer = await stream.subscribe("VM", ["id"])

    assert answer.status_code == 201
    assert answer.json() == {"id": "VM"}


def test_the_collections_that_may_be_subscribed_are_the_spec_s(xo_spec: XOSpec) -> None:
    # dist/open-api/routes/routes.js: the body's collection is an XoListenerType
    says(xo_spec, ROUTES, '"collection": { "ref": "XoListenerType", "required": true }')
    assert listener_types(xo_spec) == LISTENER_TYPES


async def test_any_listener_type_may_be_subscribed(xo_spec: XOSpec, stream: EventStream) -> None:
    # dist/events/event.service.mjs: #getListener makes a listener for any type
    says(xo_spec, SERVICE, "getEventEmitterByType(isMessage ? 'message' : type)")
    for collection in ("SR", "network", "task"):
        assert (await stream.subscribe(collection)).status_code == 201


async def test_an_unknown_collection_is_refused_with_422(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/middlewares/tsoa-to-xo-error.middleware.mjs: tsoa's ValidateError becomes
    # invalidParameters, a 422 in generic-error-handler.middleware.mjs (a status the
    # spec does not declare for this operation: it lists 201, 400, 401, 404)
    says(xo_spec, VALIDATION, "throw invalidParameters(fields);")
    says(xo_spec, ERRORS, "else if (invalidParameters.is(error)) { statusCode = 422;")
    answer = await stream.subscribe("vms")

    assert answer.status_code == 422
    assert isinstance(answer.json()["error"], str)


async def test_an_unknown_connection_is_no_such_event_404(
    xo_spec: XOSpec, xo: FakeXOServer
) -> None:
    # dist/events/event.class.mjs: SubscriberManager.getSubscriber; noSuchObject is a 404
    # in generic-error-handler.middleware.mjs
    says(xo_spec, CLASSES, "throw noSuchObject(id, 'event');")
    says(xo_spec, ERRORS, "else if (noSuchObject.is(error)) { statusCode = 404;")
    unknown = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=COOKIE) as client:
        answer = await client.post(f"/events/{unknown}/subscriptions", json={"collection": "VM"})

    assert answer.status_code == 404
    assert answer.json() == {
        "error": f"no such event {unknown}",
        "data": {"id": unknown, "type": "event"},
    }


async def test_a_closed_connection_is_unknown_afterwards(xo_spec: XOSpec, xo: FakeXOServer) -> None:
    # dist/events/event.class.mjs: a closed connection clears its subscriber
    says(
        xo_spec,
        CLASSES,
        "connection.on('close', () => this.clear());",
        "this.#manager.removeSubscriber(this.id);",
    )
    async with open_events(xo.url) as events:
        gone = events.id
    await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=COOKIE) as client:
        answer = await client.post(f"/events/{gone}/subscriptions", json={"collection": "VM"})

    assert answer.status_code == 404


# -- add, update, remove ------------------------------------------------------------
async def test_an_add_carries_the_collection_and_the_whole_object(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: XoListener.handleData's result, without its event key
    # (dist/abstract-classes/listener.mjs: const { event: overridenEvent, ...dataToBroadcast })
    says(
        xo_spec, CLASSES, "return { $subscription: this.type, event, ...(_object ?? _prevObject) };"
    )
    says(xo_spec, LISTENER, "const { event: overridenEvent, ...dataToBroadcast } = data;")
    await stream.subscribe("VM")
    vm = xo.state.add_vm(name_label="node-2", host_id=HOST_A2)

    frame = await stream.next_not_ping()

    assert frame.event == "add"
    assert frame.data == {"$subscription": "VM", **vm}


async def test_an_update_carries_the_object_as_it_is_now(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: _object (the new one) comes first in handleData's result
    says(xo_spec, CLASSES, "...(_object ?? _prevObject)")
    await stream.subscribe("VM", ["id", "power_state"])
    xo.state.stop_vm(VM_ID)

    frame = await stream.next_not_ping()

    assert frame.event == "update"
    assert frame.data == {"$subscription": "VM", "id": VM_ID, "power_state": "Halted"}


async def test_a_remove_carries_the_object_as_it_was(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: "if _object === undefined, this means we are on a remove event"
    says(xo_spec, CLASSES, "if _object === undefined, this means we are on a remove event")
    await stream.subscribe("VM", ["id", "name_label"])
    xo.state.delete_vm(VM_ID)

    frame = await stream.next_not_ping()

    assert frame.event == "remove"
    assert frame.data == {"$subscription": "VM", "id": VM_ID, "name_label": "node-1"}


async def test_a_fields_subscription_sends_only_those_fields(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: if (fields !== '*') { _object = pick(_object, fields) }
    says(
        xo_spec,
        CLASSES,
        "if (fields !== '*') { if (_object !== undefined) { _object = pick(_object, fields);",
    )
    await stream.subscribe("VM", ["name_label", "tags", "not-a-field"])
    xo.state.tag_vm(VM_ID, tags=["k8s"])

    frame = await stream.next_not_ping()

    assert frame.data == {"$subscription": "VM", "name_label": "node-1", "tags": ["k8s"]}


async def test_a_dotted_field_is_a_nested_pick(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: lodash's pick, which takes paths
    says(xo_spec, CLASSES, "import pick from 'lodash/pick.js';")
    await stream.subscribe("VM", ["id", "CPUs.max", "memory.size"])
    xo.state.resize_vm(VM_ID, cpus=6)

    frame = await stream.next_not_ping()

    assert frame.data == {
        "$subscription": "VM",
        "id": VM_ID,
        "CPUs": {"max": 6},
        "memory": {"size": 4 * 1024**3},
    }


async def test_an_update_no_picked_field_sees_is_not_sent(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: "if no changes from user perspective, don't send update"
    says(
        xo_spec,
        CLASSES,
        "if (event === 'update' && fields !== '*' && isEqual(_object, _prevObject)) {",
    )
    await stream.subscribe("VM", ["id", "name_label"])
    xo.state.tag_vm(VM_ID, tags=["unseen"])
    xo.state.rename_vm(VM_ID, name_label="seen")

    frame = await stream.next_not_ping()

    assert frame.data == {"$subscription": "VM", "id": VM_ID, "name_label": "seen"}


async def test_an_update_of_a_whole_object_subscription_is_always_sent(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.class.mjs: the isEqual check only applies when fields !== '*'
    says(xo_spec, CLASSES, "fields !== '*' && isEqual(_object, _prevObject)")
    await stream.subscribe("VM", "*")
    xo.state.rename_vm(VM_ID, name_label="node-1")  # the same name: nothing changed

    frame = await stream.next_not_ping()

    assert frame.event == "update"
    assert frame.data["name_label"] == "node-1"


async def test_a_subscription_without_fields_is_the_whole_object(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/abstract-classes/listener.mjs: addSubscriber(subscriber, fields = '*')
    says(xo_spec, LISTENER, "addSubscriber(subscriber, fields = '*') {")
    await stream.subscribe("host")
    xo.state.add_host(pool_id=POOL_A, name_label="host a3")

    frame = await stream.next_not_ping()

    assert frame.event == "add"
    assert {"$subscription", "id", "name_label", "$pool", "CPUs", "address"} <= set(frame.data)


async def test_subscribing_again_replaces_the_fields(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/abstract-classes/listener.mjs: the subscriber's entry is set again, by id
    says(
        xo_spec,
        LISTENER,
        "this.#subscribers.set(subscriber.id, { fields, subscriber, unregisterOnClear });",
    )
    await stream.subscribe("VM", ["id", "name_label"])
    await stream.subscribe("VM", ["id", "tags"])
    xo.state.tag_vm(VM_ID, tags=["t"])

    frame = await stream.next_not_ping()

    assert frame.data == {"$subscription": "VM", "id": VM_ID, "tags": ["t"]}


# -- unsubscribing -------------------------------------------------------------------
async def test_an_unsubscribe_answers_204_and_stops_the_frames(
    xo_spec: XOSpec, xo: FakeXOServer, stream: EventStream
) -> None:
    # dist/events/event.controller.mjs: removeSubscription, SuccessResponse(noContentResp...)
    says(
        xo_spec,
        CONTROLLER,
        "Delete('{id}/subscriptions/{subscriptionId}')",
        "SuccessResponse(noContentResp.status",
    )
    await stream.subscribe("VM", ["id", "name_label"])
    await stream.subscribe("pool", ["id", "name_label"])
    answer = await stream.client.delete(f"/events/{stream.id}/subscriptions/VM")
    xo.state.rename_vm(VM_ID, name_label="unseen")
    xo.state.add_pool(name_label="Pool C")

    frame = await stream.next_not_ping()

    assert answer.status_code == 204
    assert frame.data["$subscription"] == "pool"


async def test_removing_a_subscription_that_is_not_there_is_a_204(
    xo_spec: XOSpec, stream: EventStream
) -> None:
    # dist/abstract-classes/listener.mjs: removeSubscriber returns when there is none
    says(xo_spec, LISTENER, "if (subscriberWithConf === undefined) { return; }")
    answer = await stream.client.delete(f"/events/{stream.id}/subscriptions/SR")

    assert answer.status_code == 204


async def test_unsubscribing_an_unknown_connection_is_a_404(
    xo_spec: XOSpec, xo: FakeXOServer
) -> None:
    # dist/events/event.service.mjs: removeListenerFor looks the subscriber up first
    says(
        xo_spec,
        SERVICE,
        "removeListenerFor(id, type) {"
        " const subscriber = this.#subscriberManager.getSubscriber(id);",
    )
    unknown = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=COOKIE) as client:
        answer = await client.delete(f"/events/{unknown}/subscriptions/VM")

    assert answer.status_code == 404
    assert answer.json()["data"] == {"id": unknown, "type": "event"}
